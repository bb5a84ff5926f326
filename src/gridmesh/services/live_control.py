"""The control cycle live: controllers plan on the live process image, batteries get signed commands.

The optimal-control design runs one control cycle in study mode (simulated clock, profiles as truth)
and live. :class:`LiveControl` is the live half. At the first tick of every control step (15 minutes of
simulated time by default) it:

1. freezes a one-step :class:`~gridmesh.control.controller.Window` at the step's start. Present element
   powers come from the live image: meter ``TotW`` → load, inverter ``TotW`` → generation, EVSE ``TotW``
   → EV charging (and ``TotVAr`` for the reactive powers). A reading that is missing or older than three
   reporting periods falls back to the profile value now (EV charging to zero: sessions have no profile).
   The batteries' SOC comes from their ``SocPct`` telemetry, else from what the fleet model last knew;
2. offers a look-ahead (``window.lookahead(h)``, at most ``horizon_steps``) whose first step is the
   present and whose later steps are the profiles at each future step's start: the forecast the MPC plans
   on (no EV charging is assumed beyond the present step: sessions are not known in advance);
3. runs the controllers, arbitration and the safety layer with the study's own
   :class:`~gridmesh.control.cycle.ControlCycle` (rating, SOC window and PCC rating; refusals logged);
4. sends one ``set-power`` command (generator convention, W, ``user="control-cycle"``) per battery whose
   decided setpoint differs from the setpoint in force by more than the deadband (1 % of its rating). The
   setpoint in force is the newer of the battery's ``WSpt`` report and the last command sent to it, so a
   command the device never executed is sent again and an unchanged setpoint is not;
5. limits the inverter of every generator the cycle curtails to its present output minus the curtailment
   (``set-power``, W), and releases the limit once the cycle stops curtailing it.

Flexible loads are not dispatched live: a meter cannot defer a process. Their flexibility reaches the live
grid as demand response (OpenADR events to the sites' VENs), not as a setpoint.

Differences from a study, on purpose: a controller that raises is reported in that step's decision and
tried again at the next step (a live failure is often one bad image, and a controller switched off for
good would silently leave the batteries idle); the fleet model's SOC is overwritten by telemetry each
step, so its prediction only stands in where telemetry is missing.

:meth:`LiveControl.tick` is meant for the centre's cycle thread (every few wall seconds); it returns
``None`` until a new step starts, and is not re-entrant.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from gridmesh.control.controller import Controller, FloatArray, Window
from gridmesh.control.cycle import ControlCycle, SafetyLayer
from gridmesh.devices.battery import BatteryFleet
from gridmesh.errors import CommandRefused
from gridmesh.market.tariff import TimeOfUseTariff
from gridmesh.model.network import Network
from gridmesh.model.sites import SiteMembers, pcc_limits_kw
from gridmesh.services.clock import Clock
from gridmesh.services.commands import RELEASE, SET_POWER, CommandRecord, CommandService
from gridmesh.services.field import DEFAULT_PERIODS
from gridmesh.services.live_image import LiveImage
from gridmesh.sim.injections import ProfileWindow
from gridmesh.sim.profiles_at import ProfilesAt
from gridmesh.telemetry.catalogue import Catalogue, DeviceKind
from gridmesh.units import W_PER_KW

log = logging.getLogger(__name__)

USER = "control-cycle"
NS_PER_S = 1_000_000_000
STALE_PERIODS = 3  # a reading older than this many reporting periods is not the present any more
HISTORY_STEPS = 672  # a week of 15-minute decisions kept for the API
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Refusal:
    """A setpoint the cycle did not carry out as asked: clamped by the safety layer or refused by the
    command service (``source`` ``"safety"`` or ``"command"``)."""

    battery: str
    requested_kw: float
    applied_kw: float
    reason: str
    source: str


@dataclass(frozen=True)
class LiveDecision:
    """One live control step: what was decided, sent and refused, and how long it took."""

    time: datetime  # the step's start (naive UTC, like the profiles)
    setpoints_kw: dict[str, float]  # per battery (network id), generator convention, after the safety layer
    curtailed_kw: dict[str, float]  # per generator (network id) the cycle curtails in this step
    commands: tuple[CommandRecord, ...]
    refusals: tuple[Refusal, ...]
    cycle_ms: float
    failed: tuple[str, ...]  # "controller: error" of controllers that raised in this step
    fallbacks: int  # present element values taken from the profiles (reading missing or stale)


def _naive_utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def _ns(when: datetime) -> int:
    aware = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    return (aware - _EPOCH) // timedelta(microseconds=1) * 1_000


class LiveControl:
    """The control cycle on the live image; see the module docstring."""

    def __init__(
        self,
        network: Network,
        sites: Mapping[str, SiteMembers],
        catalogue: Catalogue,
        image: LiveImage,
        profiles: ProfilesAt,
        commands: CommandService,
        clock: Clock,
        controllers: Sequence[Controller],
        *,
        step: timedelta = timedelta(minutes=15),
        horizon_steps: int = 96,
        tariff: TimeOfUseTariff | None = None,
        deadband: float = 0.01,
        periods: Mapping[DeviceKind, float] = DEFAULT_PERIODS,
    ) -> None:
        if not timedelta(0) < step <= timedelta(days=1) or horizon_steps < 1 or not deadband >= 0:
            raise ValueError(
                f"need 0 < step ≤ 1 day, horizon_steps ≥ 1 and deadband ≥ 0; got {step}, {horizon_steps}, {deadband}"
            )
        self.network, self.sites, self.catalogue, self.image = network, sites, catalogue, image
        self.profiles, self.commands, self.clock = profiles, commands, clock
        self.step, self.horizon_steps, self.deadband = step, horizon_steps, deadband
        self.tariff = tariff or TimeOfUseTariff()
        self.dt_h = step / timedelta(hours=1)
        self.fleet = BatteryFleet.of(list(network.batteries.values()))
        self.cycle = ControlCycle(controllers, SafetyLayer(pcc_limit_kw=pcc_limits_kw(network, sites)))
        self._stale_ns = {kind: int(STALE_PERIODS * p * NS_PER_S) for kind, p in periods.items()}
        self._elements = {  # element order of the Window's columns, per measuring device kind
            DeviceKind.METER: list(network.loads),
            DeviceKind.INVERTER: list(network.generators),
            DeviceKind.EVSE: list(network.ev_chargers),
            DeviceKind.BATTERY: list(self.fleet.ids),
        }
        by_element = catalogue.by_element(DeviceKind.BATTERY)
        self._battery_device = {b: by_element[b].id for b in self.fleet.ids if b in by_element}
        self._sent: dict[str, tuple[float, int]] = {}  # battery → (kW, sent_ns) of the last command
        inverters = catalogue.by_element(DeviceKind.INVERTER)
        self._inverter = {g: inverters[g].id for g in network.generators if g in inverters}
        self._limited: dict[str, float] = {}  # generator → the output limit (kW) in force
        self._step_start: datetime | None = None
        self._future: list[ProfileWindow] = []  # profile values of steps 1… after the present step
        self.last: LiveDecision | None = None
        self._history: deque[LiveDecision] = deque(maxlen=HISTORY_STEPS)
        self._history_lock = threading.Lock()

    def recent(self, limit: int) -> list[LiveDecision]:
        """The ``limit`` latest decisions, newest first (thread-safe: the API reads while the cycle runs)."""
        with self._history_lock:
            return list(self._history)[::-1][:limit]

    def step_start(self, now: datetime) -> datetime:
        """The start of the control step containing ``now`` (naive UTC; steps are aligned to midnight)."""
        when = _naive_utc(now)
        midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)
        return when - (when - midnight) % self.step

    # -- the process image ----------------------------------------------------------------------------
    def _present(self, kind: DeviceKind, quantity: str, fallback: FloatArray, now_ns: int) -> tuple[FloatArray, int]:
        """``fallback`` (kW or kvar per element) with every fresh reading of ``quantity`` put in; how many
        elements kept the fallback."""
        return self.image.overlay(
            kind,
            quantity,
            self._elements[kind],
            fallback,
            scale=1 / W_PER_KW,
            fresh_after_ns=now_ns - self._stale_ns.get(kind, 0),
        )

    def _update_soc(self, now_ns: int) -> None:
        """Battery SOC from fresh ``SocPct`` telemetry; the fleet model's own value where there is none."""
        soc, _ = self.image.overlay(
            DeviceKind.BATTERY,
            "SocPct",
            self._elements[DeviceKind.BATTERY],
            self.fleet.soc,
            scale=0.01,
            fresh_after_ns=now_ns - self._stale_ns.get(DeviceKind.BATTERY, 0),
        )
        self.fleet.soc[:] = np.clip(soc, 0.0, 1.0)

    def window(self, now: datetime) -> tuple[Window, int]:
        """The frozen one-step image of the step containing ``now``, and how many present values are
        profile fallbacks. Its look-ahead reaches ``horizon_steps`` steps. Sets the fleet's SOC from
        telemetry: the fleet is the window's battery state."""
        when, now_ns = _naive_utc(now), _ns(now)
        start = self.step_start(now)
        if start != self._step_start:
            self._step_start, self._future = start, []
        base = self.profiles.values(when)
        ev_zero = np.zeros(len(self.network.ev_chargers))
        load_p, f1 = self._present(DeviceKind.METER, "TotW", base.load_p_kw[0], now_ns)
        gen_p, f2 = self._present(DeviceKind.INVERTER, "TotW", base.gen_p_kw[0], now_ns)
        ev_p, f3 = self._present(DeviceKind.EVSE, "TotW", ev_zero, now_ns)
        load_q, _ = self._present(DeviceKind.METER, "TotVAr", base.load_q_kvar[0], now_ns)
        gen_q, _ = self._present(DeviceKind.INVERTER, "TotVAr", base.gen_q_kvar[0], now_ns)
        present = ProfileWindow(load_p[None, :], load_q[None, :], gen_p[None, :], gen_q[None, :])
        self._update_soc(now_ns)
        future = self._future  # this step's profile rows, shared by every look-ahead of the step

        def lookahead(horizon: int) -> Window:
            steps = max(1, min(horizon, self.horizon_steps))
            return self._window(start, present, ev_p, future, steps, lookahead)

        return lookahead(1), f1 + f2 + f3

    def _window(
        self,
        start: datetime,
        present: ProfileWindow,
        ev_now: FloatArray,
        future: list[ProfileWindow],
        steps: int,
        lookahead: Callable[[int], Window],
    ) -> Window:
        """``steps`` steps from ``start``: the present row, then the profiles (computed once per step)."""
        while len(future) < steps - 1:
            future.append(self.profiles.values(start + self.step * (len(future) + 1)))
        rows = [present, *future[: steps - 1]]

        def stack(name: str) -> FloatArray:
            return np.vstack([getattr(r, name) for r in rows])

        ev = np.zeros((steps, len(ev_now)))
        ev[0] = ev_now
        return Window(
            self.network,
            self.sites,
            pd.date_range(start, periods=steps, freq=self.step),
            self.dt_h,
            stack("load_p_kw"),
            stack("gen_p_kw"),
            ev,
            self.fleet,
            self.tariff,
            lookahead=lookahead,
            load_q_kvar=stack("load_q_kvar"),
            gen_q_kvar=stack("gen_q_kvar"),
        )

    # -- the cycle ------------------------------------------------------------------------------------
    def tick(self, now: datetime) -> LiveDecision | None:
        """Run the cycle if ``now`` is in a step not yet decided; the decision, else ``None``."""
        start = self.step_start(now)
        if self.last is not None and start <= self.last.time:
            return None
        started = time.perf_counter()
        window, fallbacks = self.window(now)
        self.cycle.isolated.clear()  # live, every step gives every controller another chance
        decided = self.cycle.run(window, self.fleet)
        setpoints = decided.battery_kw[0]
        frame = decided.refusals
        refusals = [
            Refusal(str(b), float(asked), float(done), str(why), "safety")
            for b, asked, done, why in zip(
                frame["device"].tolist(),
                frame["requested_kw"].tolist(),
                frame["applied_kw"].tolist(),
                frame["reason"].tolist(),
                strict=True,
            )
        ]
        commands = self._send(setpoints, refusals)
        curtailed = {
            g: float(kw)
            for g, kw in zip(self.network.generators, decided.curtail_kw[0].tolist(), strict=True)
            if kw > 0.0
        }
        commands += self._curtail(curtailed, dict(zip(self.network.generators, window.gen_p_kw[0], strict=True)))
        decision = LiveDecision(
            time=start,
            setpoints_kw={b: float(p) for b, p in zip(self.fleet.ids, setpoints.tolist(), strict=True)},
            curtailed_kw=curtailed,
            commands=tuple(commands),
            refusals=tuple(refusals),
            cycle_ms=(time.perf_counter() - started) * 1e3,
            failed=tuple(decided.failures),
            fallbacks=fallbacks,
        )
        for failure in decision.failed:
            log.warning("controller failed at %s and was skipped for this step: %s", start, failure)
        self.last = decision
        with self._history_lock:
            self._history.append(decision)
        return decision

    def _curtail(self, curtailed: Mapping[str, float], output_kw: Mapping[str, float]) -> list[CommandRecord]:
        """Limit each curtailed generator's inverter to its output minus the curtailment; release the others.

        A limit that moved by no more than the deadband (of the generator's rating) is not sent again.
        """
        sent: list[CommandRecord] = []
        for generator in sorted(set(curtailed) | set(self._limited)):
            device = self._inverter.get(generator)
            if device is None:
                continue
            rating = self.network.generators[generator].p_kw
            try:
                if generator not in curtailed:
                    sent.append(self.commands.send(device, RELEASE, user=USER))
                    del self._limited[generator]
                    continue
                limit = max(output_kw[generator] - curtailed[generator], 0.0)
                previous = self._limited.get(generator)
                if previous is not None and abs(limit - previous) <= self.deadband * rating:
                    continue
                sent.append(self.commands.send(device, SET_POWER, limit * W_PER_KW, user=USER))
                self._limited[generator] = limit
            except CommandRefused as refused:
                log.warning("curtailment of %s not sent: %s", generator, refused)
        return sent

    def _in_force_kw(self, battery: str, wspt: Mapping[str, tuple[float, int]]) -> float | None:
        """The setpoint the battery works to: its newer ``WSpt`` report or our last command (None: unknown)."""
        reported, sent = wspt.get(battery), self._sent.get(battery)
        if reported is None:
            return None if sent is None else sent[0]
        if sent is None or reported[1] > sent[1]:
            return reported[0]
        return sent[0]

    def _send(self, setpoints: FloatArray, refusals: list[Refusal]) -> list[CommandRecord]:
        """One ``set-power`` per battery whose setpoint moved beyond the deadband; refusals recorded."""
        series = self.image.series(DeviceKind.BATTERY, "WSpt")
        wspt = {
            e: (v / W_PER_KW, int(ts))
            for e, v, ts in zip(series.elements, series.value.tolist(), series.ts_ns.tolist(), strict=True)
            if np.isfinite(v)
        }
        sent: list[CommandRecord] = []
        for k, battery in enumerate(self.fleet.ids):
            device = self._battery_device.get(battery)
            if device is None:
                continue
            kw = float(setpoints[k])
            in_force = self._in_force_kw(battery, wspt)
            if in_force is not None and abs(kw - in_force) <= self.deadband * float(self.fleet.p_kw[k]):
                continue
            try:
                record = self.commands.send(device, SET_POWER, kw * W_PER_KW, user=USER)
            except CommandRefused as refused:
                refusals.append(Refusal(battery, kw, float("nan"), str(refused), "command"))
                continue
            self._sent[battery] = (kw, record.sent_ns)
            sent.append(record)
        return sent
