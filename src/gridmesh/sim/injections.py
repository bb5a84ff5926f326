"""Element powers from profiles: what loads consume and generators could produce at each step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridmesh.model.network import Network
from gridmesh.model.profiles import Profiles

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ProfileWindow:
    """Loads (load convention) and available generation (generator convention), ``(steps, n)``, kW/kvar."""

    load_p_kw: FloatArray
    load_q_kvar: FloatArray
    gen_p_kw: FloatArray
    gen_q_kvar: FloatArray


class ProfileInjections:
    """Profile columns and element ratings resolved once; :meth:`window` is one gather per quantity."""

    def __init__(self, network: Network, profiles: Profiles) -> None:
        loads, gens = list(network.loads.values()), list(network.generators.values())
        self._load_p = profiles.selector([x.p_profile for x in loads])
        self._load_q = profiles.selector([x.q_profile for x in loads])
        self._gen_p = profiles.selector([x.profile for x in gens])
        self._load_p_scale = np.array([x.p_kw * x.in_service for x in loads])
        self._load_q_scale = np.array([x.q_kvar * x.in_service for x in loads])
        self._gen_p_scale = np.array([x.p_kw * x.in_service for x in gens])
        self._gen_q = np.array([x.q_kvar * x.in_service for x in gens])

    def window(self, first: int, steps: int) -> ProfileWindow:
        gen_p = self._gen_p.scaled(self._gen_p_scale, first, steps)
        return ProfileWindow(
            load_p_kw=self._load_p.scaled(self._load_p_scale, first, steps),
            load_q_kvar=self._load_q.scaled(self._load_q_scale, first, steps),
            gen_p_kw=gen_p,
            gen_q_kvar=np.broadcast_to(self._gen_q, gen_p.shape).copy(),
        )
