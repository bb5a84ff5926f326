"""The microgrid cards of the live state: import at the PCC (estimated), SOC, renewable share, islanded.

Import comes from the *estimated* branch flow at the PCC (as studies measure it); SOC and the renewable
share from the devices' latest readings (energy-weighted SOC of the site's batteries; inverter output over
meter consumption, capped at 100 %); the frequency from the batteries' ``Hz`` of their latest report (a
battery without supply reports none, so an older value no longer counts). Membership masks are built
once, so a cycle is a few numpy sums.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from gridmesh.api.ports import SiteSummary
from gridmesh.model.kinds import SiteLevel
from gridmesh.model.network import Network
from gridmesh.model.sites import SiteMembers
from gridmesh.physics.estimation import Estimate
from gridmesh.services.live_image import LiveImage
from gridmesh.sim.site_flows import pcc_reading
from gridmesh.telemetry.catalogue import DeviceKind

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class SiteSummaries:
    """One :class:`SiteSummary` per microgrid from an estimate and the live image."""

    def __init__(
        self, network: Network, sites: Mapping[str, SiteMembers], image: LiveImage, closed: Callable[[str], bool]
    ) -> None:
        self.network, self.sites, self.image, self._closed = network, sites, image, closed
        soc = image.series(DeviceKind.BATTERY, "SocPct").elements
        gen = image.series(DeviceKind.INVERTER, "TotW").elements
        use = image.series(DeviceKind.METER, "TotW").elements
        self._masks: dict[str, tuple[FloatArray, BoolArray, BoolArray]] = {}
        for site, members in sites.items():
            if members.level is SiteLevel.MICROGRID:
                bats, gens, loads = (members.elements[t] for t in ("batteries", "generators", "loads"))
                energy = np.array([network.batteries[b].e_kwh if b in bats else 0.0 for b in soc])
                self._masks[site] = (
                    energy,
                    np.array([g in gens for g in gen], dtype=bool),
                    np.array([u in loads for u in use], dtype=bool),
                )

    def __call__(self, estimate: Estimate) -> list[SiteSummary]:
        soc = self.image.series(DeviceKind.BATTERY, "SocPct").value
        hz = self.image.reported_with(DeviceKind.BATTERY, "Hz").value
        gen = self.image.series(DeviceKind.INVERTER, "TotW").value
        use = self.image.series(DeviceKind.METER, "TotW").value
        out = []
        for site, (energy, g, u) in self._masks.items():
            pcc = self.network.sites[site].pcc or ""
            reading = pcc_reading(self.network, estimate.index, pcc, self.sites[site].buses)
            flows = getattr(estimate, reading.array, None)
            import_kw = float(reading.sign * flows[reading.column]) if flows is not None else 0.0
            has = (energy > 0) & np.isfinite(soc)
            soc_pct = float(np.sum(soc[has] * energy[has]) / np.sum(energy[has])) if has.any() else None
            produced, consumed = float(np.nansum(gen[g])), float(np.nansum(use[u]))
            share = min(100.0, 100.0 * produced / consumed) if consumed > 0 else None
            measured = hz[(energy > 0) & np.isfinite(hz)]
            out.append(
                SiteSummary(
                    site=site,
                    import_kw=round(import_kw, 1) if np.isfinite(import_kw) else 0.0,
                    soc_pct=None if soc_pct is None else round(soc_pct, 1),
                    renewable_share_pct=None if share is None else round(share, 1),
                    islanded=pcc in self.network.switches and not self._closed(pcc),
                    frequency_hz=round(float(measured.mean()), 3) if measured.size else None,
                )
            )
        return out
