"""Return to the normal configuration after repair, in a switching order that never closes a loop.

FLISR leaves the grid in an abnormal state: isolating switches open, ties closed. After the repair, the
switches that differ from their normal state are operated *break before make*: first every switch that
is closed but normally open (a tie) is opened, then every switch that is open but normally closed is
closed. If the normal configuration is radial, no step can close a loop: after the opening steps the
grid is a sub-forest of the normal one, and each closing step adds an edge of the normal (radial) graph.
The price is a short interruption of the customers fed through the tie while they are switched back,
which is what operators do when the transfer is not synchronised.
"""

from __future__ import annotations

from gridmesh.model.network import Network
from gridmesh.optim.flisr_types import Action, Purpose, Step


def return_to_normal(network: Network, *, remote_only: bool = True) -> tuple[Step, ...]:
    """The steps that bring every (remote) switch back to its normal state, opens before closes."""
    switches = [s for s in network.switches.values() if s.in_service and (s.remote or not remote_only)]
    opens = [Step(s.id, Action.OPEN, Purpose.RESTORE) for s in switches if s.is_closed and not s.normally_closed]
    closes = [Step(s.id, Action.CLOSE, Purpose.RESTORE) for s in switches if not s.is_closed and s.normally_closed]
    return (*sorted(opens, key=lambda s: s.switch), *sorted(closes, key=lambda s: s.switch))
