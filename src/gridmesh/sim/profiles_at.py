"""Element powers from the profiles at any instant, for live operation.

Studies step through profiles point by point; a live run asks for "now", which falls between two
profile points and usually outside the profiles' year. The field simulator plays the grid from these
values, and the centre uses the same values as pseudo-measurements for what no device measures.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from gridmesh.model.network import Network
from gridmesh.model.profiles import Profiles
from gridmesh.sim.injections import ProfileInjections, ProfileWindow


class ProfilesAt:
    """``values(when)``: element powers linear between the two surrounding profile points."""

    def __init__(self, network: Network, profiles: Profiles) -> None:
        self.profiles = profiles
        self._injections = ProfileInjections(network, profiles) if profiles.steps >= 2 else None
        self._loads, self._gens = list(network.loads.values()), list(network.generators.values())

    @property
    def has_profiles(self) -> bool:
        return self._injections is not None

    def position(self, when: datetime) -> float:
        """Fractional profile step of ``when``.

        An instant outside the profiles is read at the same date and time of the profiles' year (so a
        live run today follows the season and time of day), and past their end they repeat.
        """
        p = self.profiles
        return ((in_profile_year(p, when) - p.start) / p.resolution) % p.steps

    def values(self, when: datetime) -> ProfileWindow:
        """Element powers at ``when`` as a batch of one; the elements' own values without profiles."""
        if self._injections is None:
            zeros = np.zeros((1, len(self._gens)))
            return ProfileWindow(
                load_p_kw=np.array([[x.p_kw * x.in_service for x in self._loads]]),
                load_q_kvar=np.array([[x.q_kvar * x.in_service for x in self._loads]]),
                gen_p_kw=zeros + [x.p_kw * x.in_service for x in self._gens],
                gen_q_kvar=zeros + [x.q_kvar * x.in_service for x in self._gens],
            )
        position = self.position(when)
        first = int(position)
        fraction = position - first
        a = self._injections.window(first, 1)
        b = self._injections.window((first + 1) % self.profiles.steps, 1)
        return ProfileWindow(
            *(
                (1.0 - fraction) * getattr(a, name) + fraction * getattr(b, name)
                for name in ("load_p_kw", "load_q_kvar", "gen_p_kw", "gen_q_kvar")
            )
        )


def in_profile_year(profiles: Profiles, when: datetime) -> datetime:
    """``when`` itself inside the profiles; outside, the same date and time of the profiles' year (29 February
    becomes the 28th in a year without it): how a live grid today reads the typical year's profiles."""
    if profiles.start <= when < profiles.end:
        return when
    try:
        return when.replace(year=profiles.start.year)
    except ValueError:
        return when.replace(year=profiles.start.year, day=28)
