"""Failure modes: which elements fail, how often, and in which fine section their faults lie.

Elements of one class (overhead line, cable, transformer, switch, and with the LV option LV lines and LV
switches) whose faults lie in the same section have the same effect, so their rates add up into one mode.
Lines are cables when their capacitance says so (``cable_min_c_nf_per_km``); a switch fault lies in the
section of its own bus; HV elements and the HV/MV transformers are outside a feeder study.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridmesh.model.kinds import VoltageLevel
from gridmesh.model.network import Network
from gridmesh.sim.reliability_rates import ReliabilityRates
from gridmesh.sim.reliability_tree import SectionTree

__all__ = ["ELEMENT_CLASSES", "Mode", "build_modes"]

BoolArray = npt.NDArray[np.bool_]
ELEMENT_CLASSES = ("overhead", "cable", "transformer", "switch", "lv_line", "lv_switch")


@dataclass(frozen=True)
class Mode:
    """A failure mode: elements of one class whose faults lie in the same fine section.

    ``elements`` are ``table:id`` strings; ``per_year`` is their summed failure rate (1/year).
    """

    section: int
    element_class: str
    elements: tuple[str, ...]
    per_year: float


def build_modes(
    network: Network, tree: SectionTree, rates: ReliabilityRates, *, lv: bool, in_feeder: BoolArray
) -> list[Mode]:
    """Failure modes of the in-service elements whose faults lie in a feeder section (``in_feeder``).

    The substation (busbars, couplers, feeder-head breakers at the busbar, HV/MV transformers) is outside a
    feeder study: it may be meshed, and its faults are a matter of bus protection, not of feeder switching.
    """
    fine, buses = tree.fine, network.buses
    found: dict[tuple[int, str], list[tuple[str, float]]] = {}

    def add(section: int, element_class: str, element: str, per_year: float) -> None:
        if per_year > 0 and tree.pre[section] >= 0 and in_feeder[section]:
            found.setdefault((section, element_class), []).append((element, per_year))

    for line in network.lines.values():
        level = buses[line.from_bus].voltage_level
        if not line.in_service or not _studied(level, lv):
            continue
        km = line.length_km * line.parallel
        if level is VoltageLevel.LV:
            cls, rate = "lv_line", rates.lv_line_per_km_year
        elif line.c_nf_per_km >= rates.cable_min_c_nf_per_km:
            cls, rate = "cable", rates.cable_per_km_year
        else:
            cls, rate = "overhead", rates.overhead_per_km_year
        add(_int(fine.of_element("lines", line.id)), cls, f"lines:{line.id}", rate * km)
    for trafo in network.transformers.values():
        if trafo.in_service and buses[trafo.hv_bus].voltage_level is VoltageLevel.MV:
            section = _int(fine.of_element("transformers", trafo.id))
            add(section, "transformer", f"transformers:{trafo.id}", rates.transformer_per_year * trafo.parallel)
    for sw in network.switches.values():
        level = buses[sw.bus].voltage_level
        if not sw.in_service or not _studied(level, lv):
            continue
        section = fine.sides(sw.id)[0] if sw.id in fine.switch_sides else fine.section_of_bus[sw.bus]
        if level is VoltageLevel.LV:
            add(section, "lv_switch", f"switches:{sw.id}", rates.lv_switch_per_year)
        else:
            add(section, "switch", f"switches:{sw.id}", rates.switch_per_year)
    return [
        Mode(section, cls, tuple(e for e, _ in items), sum(r for _, r in items))
        for (section, cls), items in sorted(found.items(), key=lambda kv: (kv[0][0], ELEMENT_CLASSES.index(kv[0][1])))
    ]


def _studied(level: VoltageLevel, lv: bool) -> bool:
    return level is VoltageLevel.MV or (lv and level is VoltageLevel.LV)


def _int(section: int | tuple[int, int]) -> int:
    return section if isinstance(section, int) else section[0]
