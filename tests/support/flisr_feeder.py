"""A 20 kV substation with two feeders, ten switch-bounded sections and two normally-open ties (FLISR tests).

::

    sub ─rA─ a1 ─sA1─ a2 ─sA2─ a3 ─ a4 ─sA4─ a5 ─ a6 ┄tie1┄ b3
                              │                           │
                             sA7─ a7 ┄┄┄┄┄┄┄┄┄tie2┄┄┄┄┄┄ b2
    sub ─rB─ b1 ─sB2─ b2 ─sB3─ b3 ─sB4─ b4

Every switch drawn is remote; ``tie1``/``tie2`` are normally open. ``a7`` feeds the critical clinic.
``tie_amps`` rates the two tie lines (tight ratings make transfers short of capacity).
"""

from __future__ import annotations

from gridmesh.model.elements import Bus, ExternalGrid, Line, Load, Switch
from gridmesh.model.kinds import SwitchedElement, SwitchKind
from gridmesh.model.network import Network

LOADS_KW = {"a1": 300.0, "a2": 200.0, "a3": 500.0, "a4": 400.0, "a5": 350.0, "a6": 250.0, "a7": 300.0}
LOADS_KW |= {"b1": 400.0, "b2": 300.0, "b3": 300.0, "b4": 200.0}


def _line(id_: str, a: str, b: str, amps: float = 300.0) -> Line:
    return Line(id=id_, from_bus=a, to_bus=b, length_km=2.0, r_ohm_per_km=0.16, x_ohm_per_km=0.11, max_i_a=amps)


def _switch(id_: str, bus: str, line: str, kind: SwitchKind, *, closed: bool = True) -> Switch:
    return Switch(
        id=id_, bus=bus, element=line, element_type=SwitchedElement.LINE, kind=kind, remote=True, normally_closed=closed
    )


def two_feeders(tie_amps: float = 300.0) -> Network:
    rec, sec, tie = SwitchKind.RECLOSER, SwitchKind.SECTIONALISER, SwitchKind.TIE
    buses = ["sub", *LOADS_KW]
    return Network.from_elements(
        [
            *(Bus(id=b, vn_kv=20) for b in buses),
            ExternalGrid(id="grid", bus="sub"),
            _line("lA1", "sub", "a1"),
            _line("lA2", "a1", "a2"),
            _line("lA3", "a2", "a3"),
            _line("lA4", "a3", "a4"),
            _line("lA5", "a4", "a5"),
            _line("lA6", "a5", "a6"),
            _line("lA7", "a3", "a7"),
            _line("lB1", "sub", "b1"),
            _line("lB2", "b1", "b2"),
            _line("lB3", "b2", "b3"),
            _line("lB4", "b3", "b4"),
            _line("lT1", "a6", "b3", tie_amps),
            _line("lT2", "a7", "b2", tie_amps),
            _switch("rA", "sub", "lA1", rec),
            _switch("sA1", "a1", "lA2", sec),
            _switch("sA2", "a2", "lA3", sec),
            _switch("sA4", "a4", "lA5", sec),
            _switch("sA7", "a3", "lA7", sec),
            _switch("rB", "sub", "lB1", rec),
            _switch("sB2", "b1", "lB2", sec),
            _switch("sB3", "b2", "lB3", sec),
            _switch("sB4", "b3", "lB4", sec),
            _switch("tie1", "a6", "lT1", tie, closed=False),
            _switch("tie2", "a7", "lT2", tie, closed=False),
            *(
                Load(id=f"load-{b}", bus=b, p_kw=p, q_kvar=0.2 * p, customers=10, critical=b == "a7")
                for b, p in LOADS_KW.items()
            ),
        ]
    )


def tripped(network: Network, *switches: str) -> Network:
    """The network after protection opened ``switches``."""
    return network.with_elements([network.switches[s].model_copy(update={"closed": False}) for s in switches])


def with_states(network: Network, states: dict[str, bool]) -> Network:
    """The network with the given switch states applied."""
    return network.with_elements([network.switches[s].model_copy(update={"closed": c}) for s, c in states.items()])
