"""The centre's knowledge of every switch position, from whichever report is newest.

Three sources tell where a switch is: its RTU's ``Pos`` telemetry (periodic), protection events (a
``trip`` or ``lockout`` opens it, a ``reclose`` closes it — the moment it happens) and acknowledged
commands. FLISR must plan on the grid as it is *now*, seconds after a trip, so the newest report wins
rather than waiting for the next telemetry period. The version number changes with every change, so
consumers (the state estimator) rebuild their topology only when it moved.
"""

from __future__ import annotations

import threading

from gridmesh.model.network import Network
from gridmesh.services.live_image import SeriesValues
from gridmesh.telemetry.quantities import POS_CLOSED, POS_OPEN


class SwitchStates:
    """Latest position (closed or not) and its timestamp per switch; thread-safe."""

    def __init__(self, network: Network) -> None:
        self.base = network
        self._closed = {s.id: s.is_closed for s in network.switches.values()}
        self._ts = dict.fromkeys(self._closed, 0)
        self._lock = threading.Lock()
        self.version = 0
        self._cached: tuple[int, Network] = (0, network)

    def report(self, switch: str, closed: bool, ts_ns: int) -> bool:
        """Take a report unless an equally new or newer one is known; True when the position changed."""
        with self._lock:
            if switch not in self._closed or ts_ns < self._ts[switch]:
                return False
            self._ts[switch] = ts_ns
            if self._closed[switch] == closed:
                return False
            self._closed[switch] = closed
            self.version += 1
            return True

    def from_positions(self, positions: SeriesValues) -> None:
        """Take the RTUs' ``Pos`` readings (1 open, 2 closed; intermediate and bad positions are ignored)."""
        values, stamps = positions.value.tolist(), positions.ts_ns.tolist()
        for switch, value, ts in zip(positions.elements, values, stamps, strict=True):
            if value in (POS_OPEN, POS_CLOSED):
                self.report(switch, value == POS_CLOSED, ts)

    def closed(self, switch: str) -> bool:
        with self._lock:
            return self._closed[switch]

    def network(self) -> Network:
        """The base network with the known positions (rebuilt only when a position changed)."""
        with self._lock:
            version, closed = self.version, dict(self._closed)
        if self._cached[0] == version:
            return self._cached[1]
        switches = [s.model_copy(update={"closed": closed[s.id]}) for s in self.base.switches.values()]
        present = self.base.with_elements(switches)
        self._cached = (version, present)
        return present
