"""A fault in study mode: what protection does and what FLISR would do, without the live platform.

The same pieces as the live service, in one pass on a snapshot: IEC 60909 currents, the protective
device that trips (and the fault passage indicators), the location from those indications, and the
restoration plan checked by power flow at the snapshot's loads. Used by ``gridmesh fault study``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from gridmesh.model.network import Network
from gridmesh.model.sections import sections_of
from gridmesh.optim.flisr import Plan, plan
from gridmesh.optim.flisr_locate import locate
from gridmesh.optim.flisr_types import Location
from gridmesh.physics.protection import ProtectionResponse, protection_response
from gridmesh.physics.short_circuit import Fault, ShortCircuit


@dataclass(frozen=True)
class FaultStudy:
    fault: Fault
    fault_ka: float
    protection: ProtectionResponse
    location: Location | None
    plan: Plan | None
    plan_ms: float


def study_fault(network: Network, fault: Fault, loads_kw: Mapping[str, float]) -> FaultStudy:
    """Short circuit → protection → location → plan (no plan when nothing tripped or it cleared)."""
    currents = ShortCircuit(network).currents([fault])
    response = protection_response(network, fault, currents)
    if response.tripped is None or not response.locked_out:
        return FaultStudy(fault, currents.fault_ka(fault), response, None, None, 0.0)
    started = time.perf_counter()
    tripped = network.switches[response.tripped].model_copy(update={"closed": False})
    after = network.with_elements([tripped])
    sections = sections_of(after)
    indications = {sw: seen for sw, seen in response.indications.items() if sw in sections.switch_sides}
    location = locate(after, sections, [response.tripped], indications)
    chosen = plan(after, sections, location, loads_kw)
    return FaultStudy(
        fault, currents.fault_ka(fault), response, location, chosen, (time.perf_counter() - started) * 1e3
    )
