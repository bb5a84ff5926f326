"""The field simulator's grid: what every device does at a simulated instant, and the power flow of it.

One :class:`FieldGrid` holds the live state the devices act on: profile injections (interpolated
linearly between the profile points), EV sessions, battery SOC and setpoints, inverter curtailment and
switch positions. :meth:`FieldGrid.advance` moves to a new instant and solves ONE power flow of the
whole network (a batch of one on a model built once; a switching rebuilds it, some 40 ms on the demo).

Devices on a bus with no path to a source (after a switch opened) produce and consume nothing: inverters
stop (anti-islanding), batteries idle, chargers pause, loads go dark. Where a grid-forming battery is
there, it holds the part up as an island: its P-droop sets the island's frequency (reported by the
batteries there), whose difference from the grid's turns the island's phase angle against the grid; a
switch that closes such an island back onto the grid synchronises it first (synch-check, IEEE 1547-2018
limits; :mod:`gridmesh.control.resync`), and the closing is recorded in :attr:`FieldGrid.synchronised`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from gridmesh.control.resync import DEGREES_PER_CYCLE, Resync, SideState, ieee1547_limits, synchronise, wrap_deg
from gridmesh.devices.battery import BatteryFleet
from gridmesh.devices.ev import Sessions, draw_sessions, uncontrolled_power
from gridmesh.model.graph import connectivity, far_side_buses
from gridmesh.model.network import Network
from gridmesh.model.scenario import Scenario
from gridmesh.physics.island import Droop, Island, find_islands, with_island_sources
from gridmesh.physics.powerflow import FULL_OUTPUTS, FloatArray, Injections, PowerFlow, PowerFlowResult
from gridmesh.physics.short_circuit import Fault
from gridmesh.sim.injections import ProfileWindow
from gridmesh.sim.profiles_at import ProfilesAt

BoolArray = npt.NDArray[np.bool_]
SESSION_DAYS = 28  # EV sessions are drawn for four weeks and repeat (scenarios without profiles)
_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Synchronised:
    """A switch closed a live island back onto the grid after synchronising it."""

    switch: str
    former: str  # the island's grid-forming battery
    resync: Resync

    @property
    def detail(self) -> dict[str, str | float]:
        """What the switch's ``resync`` event tells: the differences found, and how long synchronising took."""
        before = self.resync.before
        return {
            "former": self.former,
            "seconds": round(self.resync.seconds, 3),
            "df_hz": round(before.df_hz, 4),
            "dv_pu": round(before.dv_pu, 4),
            "dangle_deg": round(before.dangle_deg, 2),
        }


@dataclass(frozen=True)
class GridState:
    """Everything the devices measure at one instant; arrays in the power flow's element order (kW, kvar)."""

    when: datetime
    flow: PowerFlowResult
    load_p_kw: FloatArray
    load_q_kvar: FloatArray
    gen_p_kw: FloatArray
    gen_q_kvar: FloatArray
    ev_p_kw: FloatArray
    ev_limit_kw: FloatArray  # in force: the commanded cap, else the charger's rating (load convention)
    battery_p_kw: FloatArray
    battery_setpoint_kw: FloatArray  # commanded (generator convention), 0 where idle
    battery_soc: FloatArray  # fraction of capacity
    switch_closed: dict[str, bool]  # remote switches
    fault_indicated: frozenset[str] = frozenset()  # switches whose fault passage indicator is latched
    load_shed_kw: FloatArray | None = None  # consumption shed per load in this power flow (None: none)
    battery_hz: FloatArray | None = None  # frequency at each battery (NaN without supply; None: nominal)

    @property
    def failed(self) -> bool:
        return bool(self.flow.failed)


class FieldGrid:
    """The scenario's devices and network as they stand, advanced instant by instant."""

    def __init__(self, scenario: Scenario, *, seed: int = 7, method: str = "newton_raphson") -> None:
        self.network: Network = scenario.network
        self.profiles = scenario.profiles
        self.method = method
        net = self.network
        self.profiles_at = ProfilesAt(net, self.profiles)
        self._gens = list(net.generators.values())
        self._chargers = list(net.ev_chargers.values())
        self.fleet = BatteryFleet.of(list(net.batteries.values()))
        self.battery_setpoint_kw: FloatArray = np.full(len(self.fleet), np.nan)  # NaN: idle (released)
        self.ev_cap_kw: FloatArray = np.full(len(self._chargers), np.nan)  # NaN: no cap
        self.gen_cap_kw: FloatArray = np.full(len(self._gens), np.nan)  # NaN: not curtailed
        # Consumption shed per load (power-flow order), e.g. a site answering a demand-response event.
        self.load_shed_kw: FloatArray = np.zeros(len(net.loads))
        # Per load (power-flow order): the supply relay of its smart meter is closed (DLMS disconnect control).
        self.load_supplied: BoolArray = np.ones(len(net.loads), dtype=bool)
        # Present charging power per charger (power-flow order, NaN: use the seeded sessions) when the
        # chargers are played by something else, e.g. the OCPP stations obeying the centre's smart charging.
        self.ev_power: Callable[[], FloatArray] | None = None
        self.ev_rating_kw = np.array([c.p_kw * c.connectors for c in self._chargers], dtype=np.float64)
        self.battery_rating_kw = np.array([b.p_kw for b in net.batteries.values()], dtype=np.float64)
        self.gen_rating_kw = np.array([g.p_kw for g in self._gens], dtype=np.float64)
        self._dt_h = self.profiles.resolution / timedelta(hours=1)
        horizon = self.profiles.steps if self.profiles_at.has_profiles else round(SESSION_DAYS * 24 / self._dt_h)
        self._horizon = horizon
        self._sessions: Sessions = draw_sessions(self._chargers, steps=horizon, dt_h=self._dt_h, seed=seed)
        self._depleted: set[str] = set()  # grid-forming batteries that could no longer hold their island
        self._faulted_buses: frozenset[str] = frozenset()  # where a fault is present: no island holds them
        self._islands: tuple[Island, ...] = ()
        self.droop = Droop()
        self._island_phase: dict[str, tuple[float, float]] = {}  # former → (Hz, angle to the grid in degrees)
        self._island_q_kvar: dict[str, float] = {}  # former → reactive power it delivered at the last instant
        self.synchronised: list[Synchronised] = []  # closings onto live islands, taken by the simulator
        self._last_v_pu: FloatArray | None = None
        self.engine: PowerFlow
        self._build()
        idx = self.engine.index
        self._bus_pos = bus_pos = {b: i for i, b in enumerate(idx.buses)}  # switching never reorders buses
        # Bus position of every element, per table in power-flow order (switching never changes these).
        self.load_bus = np.array([bus_pos[net.loads[e].bus] for e in idx.loads], dtype=np.int64)
        self.gen_bus = np.array([bus_pos[net.generators[e].bus] for e in idx.generators], dtype=np.int64)
        self.ev_bus = np.array([bus_pos[net.ev_chargers[e].bus] for e in idx.ev_chargers], dtype=np.int64)
        self.battery_bus = np.array([bus_pos[net.batteries[e].bus] for e in idx.batteries], dtype=np.int64)
        self._remote_closed = {s.id: s.is_closed for s in net.switches.values() if s.remote}
        self.fault_indicated: frozenset[str] = frozenset()  # latched FPIs, kept by the simulator's fault book

    @property
    def energized_bus(self) -> BoolArray:
        """Per bus in power-flow order: supplied through the present switch states."""
        return self._energized_bus

    # -- commands -----------------------------------------------------------------------------------
    def set_battery(self, position: int, kw: float | None) -> None:
        """Setpoint in kW (generator convention) for the battery at ``position``; None releases it."""
        self.battery_setpoint_kw[position] = np.nan if kw is None else kw

    def set_ev_cap(self, position: int, kw: float | None) -> None:
        """Charging cap in kW (load convention, ≥ 0) for the charger at ``position``; None releases it."""
        self.ev_cap_kw[position] = np.nan if kw is None else kw

    def set_gen_cap(self, position: int, kw: float | None) -> None:
        """Curtailment limit in kW for the generator at ``position``; None releases it."""
        self.gen_cap_kw[position] = np.nan if kw is None else kw

    def set_supply(self, position: int, closed: bool) -> None:
        """Open or close the supply relay of the meter of the load at ``position`` (open: the load draws nothing)."""
        self.load_supplied[position] = closed

    def is_closed(self, switch: str) -> bool:
        """Present position of a remote-controllable switch."""
        return self._remote_closed[switch]

    def set_switch(self, switch: str, closed: bool) -> bool:
        """Operate a switch; returns whether the topology changed (the power-flow model is then rebuilt)."""
        present = self.network.switches[switch]
        if present.is_closed == closed:
            return False
        held = self._islands
        self.network = self.network.with_elements([present.model_copy(update={"closed": closed})])
        self._depleted.clear()  # a new topology: every grid-forming battery may try again
        self._build()
        if closed:
            self._synchronise(switch, held)
        if present.remote:
            self._remote_closed[switch] = closed
        return True

    def _synchronise(self, switch: str, held: tuple[Island, ...]) -> None:
        """Record how each island this closing joined to the grid was synchronised before the breaker
        closed: the synch-check across the switch at the island's frequency and angle, and the time its
        grid-forming unit took to bring them into the window (seconds, well inside one tick)."""
        now_formers = {i.former for i in self._islands}
        sides = (self.network.switches[switch].bus, *far_side_buses(self.network, switch))
        bus_pos = self._bus_pos
        for island in held:
            joined = island.former not in now_formers and self._energized_bus[bus_pos[island.buses[0]]]
            inside = [b for b in sides if b in island.buses]
            outside = [b for b in sides if b not in island.buses]
            if not joined or not inside or not outside:
                continue
            f_hz, angle = self._island_phase.get(island.former, (self.droop.f0_hz, 0.0))
            v = self._last_v_pu
            v_island = float(v[bus_pos[inside[0]]]) if v is not None else 1.0
            v_grid = float(v[bus_pos[outside[0]]]) if v is not None else 1.0
            limits = ieee1547_limits(self.network.batteries[island.former].p_kw)
            resync = synchronise(
                SideState(v_island, f_hz, angle),
                SideState(v_grid if v_grid > 0 else v_island, self.droop.f0_hz, 0.0),
                limits,
            )
            self.synchronised.append(Synchronised(switch, island.former, resync))

    def take_synchronised(self) -> list[Synchronised]:
        """The closings onto live islands since the last call."""
        taken, self.synchronised = self.synchronised, []
        return taken

    @property
    def islands(self) -> tuple[Island, ...]:
        """Parts of the grid cut off from the external grids and held up by a grid-forming battery."""
        return self._islands

    def _build(self, *, same_topology: bool = False) -> None:
        """The power-flow model of the present topology: every de-energised part with a grid-forming battery
        becomes an island with that battery as its voltage source (:mod:`gridmesh.physics.island`).
        ``same_topology``: only the islands may have changed; the model is kept when they did not."""
        formers = [b.id for b in self.network.batteries.values() if b.grid_forming and b.id not in self._depleted]
        # a grid-forming inverter's own protection trips on a fault inside its island: that island stays dark
        found = find_islands(self.network, formers=formers)
        islands = tuple(i for i in found if self._faulted_buses.isdisjoint(i.buses))
        if same_topology and islands == self._islands:
            return
        self._islands = islands
        solved = with_island_sources(self.network, self._islands) if self._islands else self.network
        self.engine = PowerFlow(solved, method=self.method, outputs=FULL_OUTPUTS)
        position = {b: i for i, b in enumerate(self.network.batteries)}
        sources = {s: i for i, s in enumerate(self.engine.index.sources)}
        self._former = np.array([position[i.former] for i in self._islands], dtype=np.int64)
        battery_bus = np.array([b.bus for b in self.network.batteries.values()], dtype=object)
        # per island, the batteries inside it (they report its frequency)
        self._island_batteries = np.array(
            [np.isin(battery_bus, i.buses) for i in self._islands], dtype=bool
        ).reshape(len(self._islands), len(battery_bus))
        self._former_source = np.array([sources[i.source_id] for i in self._islands], dtype=np.int64)
        self._source_u_pu = np.array([solved.external_grids[x].vm_pu for x in self.engine.index.sources])
        conn = connectivity(solved)
        by_id = dict(zip(conn.bus_ids, conn.energized, strict=True))
        self._energized_bus = np.array([by_id[b] for b in self.engine.index.buses], dtype=bool)

    def set_faults(self, faults: Iterable[Fault]) -> None:
        """The faults present now (the fault book tells): an island holding one is not formed."""
        buses: set[str] = set()
        for fault in faults:
            if fault.table == "buses":
                buses.add(fault.element)
            else:
                line = self.network.lines[fault.element]
                buses.update((line.from_bus, line.to_bus))
        if frozenset(buses) != self._faulted_buses:
            self._faulted_buses = frozenset(buses)
            self._build(same_topology=True)

    def _hold_islands(self, flow: PowerFlowResult, battery_kw: FloatArray, elapsed_s: float) -> None:
        """Each island's grid-forming battery delivers what its island draws (the source's power): its SOC
        integrates that; one that cannot (SOC window) gives up its island, which goes dark next tick."""
        if not self._islands:
            self._island_phase, self._island_q_kvar = {}, {}
            return
        drawn = np.nan_to_num(flow.grid_p_kw[0][self._former_source])
        q = np.nan_to_num(flow.grid_q_kvar[0][self._former_source])
        self._island_q_kvar = dict(zip((i.former for i in self._islands), q.tolist(), strict=True))
        self._turn_islands(self.droop.frequency_hz(drawn, self.battery_rating_kw[self._former]), elapsed_s)
        request = np.zeros(len(self.fleet))
        request[self._former] = drawn
        if elapsed_s > 0:
            applied = self.fleet.step(request, elapsed_s / _SECONDS_PER_HOUR)[self._former]
        else:
            discharge, charge = self.fleet.limits_kw(1.0 / _SECONDS_PER_HOUR)
            applied = np.clip(drawn, -charge[self._former], discharge[self._former])
        battery_kw[self._former] = drawn
        failing = np.abs(applied - drawn) > 1e-6
        if failing.any():
            self._depleted.update(self._islands[k].former for k in np.flatnonzero(failing))
            self._build(same_topology=True)

    def _source_voltages(self) -> FloatArray | None:
        """Voltage set-point of every source, ``(1, sources)``: each grid-forming battery's Q-V droop at the
        reactive power it delivered at the previous instant (the study's fixed point, one pass per instant:
        instants are seconds apart and Q moves slowly), the external grids' own; None without islands."""
        if not self._islands:
            return None
        q = np.array([self._island_q_kvar.get(i.former, 0.0) for i in self._islands])
        u = self._source_u_pu.copy()
        u[self._former_source] = self.droop.voltage_pu(q, self.battery_rating_kw[self._former])
        return u[None, :]

    def _turn_islands(self, hz: FloatArray, elapsed_s: float) -> None:
        """Each island's angle to the grid turns at its frequency difference over the interval just held
        (at the frequency it had), then takes its new frequency; an island formed just now starts in phase."""
        f0, phase = self.droop.f0_hz, {}
        for island, f_new in zip(self._islands, hz.tolist(), strict=True):  # a handful of islands at most
            held = self._island_phase.get(island.former)
            turned = 0.0 if held is None else wrap_deg(held[1] + DEGREES_PER_CYCLE * (held[0] - f0) * elapsed_s)
            phase[island.former] = (f_new, turned)
        self._island_phase = phase

    def battery_hz(self, battery_live: BoolArray) -> FloatArray:
        """Frequency at each battery: the grid's, its island's, or NaN without supply."""
        hz = np.where(battery_live, self.droop.f0_hz, np.nan)
        for k, island in enumerate(self._islands):
            hz[self._island_batteries[k]] = self._island_phase.get(island.former, (self.droop.f0_hz, 0.0))[0]
        return hz

    # -- stepping -----------------------------------------------------------------------------------
    def advance(self, when: datetime, elapsed_s: float) -> GridState:
        """Move to ``when`` (``elapsed_s`` simulated seconds after the previous instant) and solve it.

        Batteries integrate their SOC over the elapsed interval with the setpoint now in force (a
        zero-order hold, as in a study step), clamped by the fleet model to rating and SOC window.
        """
        base = self.profile_values(when)
        live = self._energized_bus
        load_live, gen_live = live[self.load_bus] & self.load_supplied, live[self.gen_bus]
        ev_live, bat_live = live[self.ev_bus], live[self.battery_bus]

        request = np.where(bat_live, np.nan_to_num(self.battery_setpoint_kw, nan=0.0), 0.0)
        request[self._former] = 0.0  # an island's former is its voltage source: its power comes from the flow
        if elapsed_s > 0:
            battery_kw = self.fleet.step(request, elapsed_s / _SECONDS_PER_HOUR)
        else:
            discharge, charge = self.fleet.limits_kw(1.0 / _SECONDS_PER_HOUR)
            battery_kw = np.clip(request, -charge, discharge)
        ev_limit = np.where(np.isnan(self.ev_cap_kw), self.ev_rating_kw, self.ev_cap_kw)
        demand = self._ev_demand_kw(when)
        if self.ev_power is not None:  # chargers played elsewhere (OCPP stations) draw what they report
            drawn = self.ev_power()
            demand = np.where(np.isnan(drawn), demand, drawn)
        ev_kw = np.minimum(demand, ev_limit) * ev_live
        gen_kw = np.fmin(base.gen_p_kw[0], self.gen_cap_kw) * gen_live
        demand = base.load_p_kw[0]
        load_kw = np.where(demand > 0, np.clip(demand - self.load_shed_kw, 0.0, None), demand)
        kept = np.divide(load_kw, demand, out=np.ones_like(demand), where=demand > 0)  # power factor held
        injections = Injections(
            load_p_kw=(load_kw * load_live)[None, :],
            load_q_kvar=(base.load_q_kvar[0] * kept * load_live)[None, :],
            gen_p_kw=gen_kw[None, :],
            gen_q_kvar=(base.gen_q_kvar[0] * gen_live)[None, :],
            ev_p_kw=ev_kw[None, :],
            battery_p_kw=battery_kw[None, :],
        )
        flow = self.engine.run(injections, source_u_pu=self._source_voltages())
        self._hold_islands(flow, battery_kw, elapsed_s)
        self._last_v_pu = flow.v_pu[0]
        return GridState(
            when=when,
            flow=flow,
            load_p_kw=injections.load_p_kw[0],
            load_q_kvar=injections.load_q_kvar[0],
            gen_p_kw=gen_kw,
            gen_q_kvar=injections.gen_q_kvar[0],
            ev_p_kw=ev_kw,
            ev_limit_kw=ev_limit,
            battery_p_kw=battery_kw,
            battery_setpoint_kw=np.nan_to_num(self.battery_setpoint_kw, nan=0.0),
            battery_soc=self.fleet.soc.copy(),
            switch_closed=dict(self._remote_closed),
            fault_indicated=self.fault_indicated,
            load_shed_kw=self.load_shed_kw.copy(),
            battery_hz=self.battery_hz(bat_live),
        )

    def profile_values(self, when: datetime) -> ProfileWindow:
        """Element powers at ``when`` (see :class:`~gridmesh.sim.profiles_at.ProfilesAt`)."""
        return self.profiles_at.values(when)

    def _ev_demand_kw(self, when: datetime) -> FloatArray:
        """Uncontrolled charging demand per charger at ``when`` (sessions are steps: no interpolation)."""
        if not self._chargers:
            return np.zeros(0)
        if self.profiles_at.has_profiles:
            step = int(self.profiles_at.position(when)) % self._horizon
        else:
            step = int((when - self.profiles.start) / self.profiles.resolution) % self._horizon
        demand: FloatArray = uncontrolled_power(self._sessions, self._chargers, first=step, steps=1, dt_h=self._dt_h)[0]
        return demand
