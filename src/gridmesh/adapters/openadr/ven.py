"""OpenADR 2.0b VENs for the field: one openleadr ``OpenADRClient`` per site, all in one asyncio thread.

A VEN registers with its provisioned certificate, polls the VTN, decides per event whether to take
part (an ``OptPolicy``), hands an accepted event to the site through ``on_instruction`` (the site's
control cycle applies it: its flexible load reduced by the requested kW between start and end), and
reports the site's actual load as TELEMETRY_USAGE (real power, kW) every ``report_interval``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from openleadr import OpenADRClient

from gridmesh.adapters.openadr import compat
from gridmesh.adapters.openadr.certificates import Credentials
from gridmesh.adapters.openadr.events import DrSignal
from gridmesh.adapters.openadr.loop import LoopThread
from gridmesh.model.scenario import Scenario
from gridmesh.model.sites import resolve_sites

compat.install()

OPT_IN, OPT_OUT = "optIn", "optOut"


@dataclass(frozen=True)
class DrInstruction:
    """What a site is asked to do: ``level`` of ``signal`` over ``[start, end)`` (UTC); ``cancelled``
    withdraws an instruction given before. ``event_id`` is the id the VEN received."""

    site: str
    event_id: str
    signal: DrSignal
    start: dt.datetime
    end: dt.datetime
    level: float
    cancelled: bool = False

    @property
    def shed_kw(self) -> float:
        """kW to take off the site's flexible load (LOAD_DISPATCH); 0 for other signals or when cancelled."""
        return self.level if self.signal is DrSignal.LOAD_DISPATCH and not self.cancelled else 0.0

    def active_at(self, now: dt.datetime) -> bool:
        return not self.cancelled and self.start <= now < self.end


class OptPolicy(Protocol):
    """Decides whether a site takes part in an event (True: opt in)."""

    def __call__(self, instruction: DrInstruction) -> bool: ...


@dataclass(frozen=True)
class AlwaysOptIn:
    def __call__(self, instruction: DrInstruction) -> bool:
        return True


@dataclass(frozen=True)
class CriticalShareOptOut:
    """Opt out where critical loads are more than ``max_share`` of a site's load (by rated kW)."""

    shares: Mapping[str, float]
    max_share: float = 0.5

    @classmethod
    def from_scenario(cls, scenario: Scenario, *, max_share: float = 0.5) -> CriticalShareOptOut:
        """Critical share per site = critical loads' ``p_kw`` / all in-service loads' ``p_kw``."""
        loads = scenario.network.loads
        shares = {}
        for site, members in resolve_sites(scenario.network).items():
            ids = [i for i in members.elements["loads"] if loads[i].in_service]
            p = np.array([abs(loads[i].p_kw) for i in ids], dtype=float)
            critical = np.array([loads[i].critical for i in ids], dtype=bool)
            shares[site] = float(p[critical].sum() / p.sum()) if p.sum() > 0 else 0.0
        return cls(shares, max_share)

    def __call__(self, instruction: DrInstruction) -> bool:
        return self.shares.get(instruction.site, 0.0) <= self.max_share


class RandomOptOut:
    """Opt out with ``probability``, from a seeded generator (reproducible runs)."""

    def __init__(self, probability: float, *, seed: int = 0) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"opt-out probability must be in [0, 1], got {probability}")
        self.probability = probability
        self._rng = np.random.default_rng(seed)

    def __call__(self, instruction: DrInstruction) -> bool:
        return bool(self._rng.random() >= self.probability)


@dataclass(frozen=True)
class VenConfig:
    """A site's VEN: its id (the site id), the VTN's URL and fingerprint, and its credentials."""

    ven_id: str
    vtn_url: str
    credentials: Credentials
    ca_path: Path  # the CA file that signed the VTN's TLS certificate
    vtn_fingerprint: str
    report_interval: dt.timedelta = dt.timedelta(seconds=60)


def instruction_from(site: str, event: Mapping[str, Any]) -> DrInstruction | None:
    """An openleadr event dict → the site's instruction (first signal, first interval's payload);
    None for a signal gridmesh does not handle."""
    descriptor = event["event_descriptor"]
    signals = event["event_signals"]
    signal = signals[0] if isinstance(signals, list) else signals["event_signals"][0]
    try:
        kind = DrSignal(signal["signal_name"].upper())
    except ValueError:
        return None
    intervals = signal["intervals"]
    start = min(i["dtstart"] for i in intervals)
    end = max(i["dtstart"] + i["duration"] for i in intervals)
    return DrInstruction(site, descriptor["event_id"], kind, start, end, float(intervals[0]["signal_payload"]),
                         cancelled=descriptor.get("event_status") == "cancelled")


class SiteVen:
    """One site's VEN. Runs on a ``VenFleet``'s loop; ``decisions`` and ``refusal`` are for inspection."""

    def __init__(
        self,
        config: VenConfig,
        *,
        load_kw: Callable[[], float],
        on_instruction: Callable[[DrInstruction], None],
        policy: OptPolicy = AlwaysOptIn(),
    ) -> None:
        self.config = config
        self._load_kw = load_kw
        self._on_instruction = on_instruction
        self._policy = policy
        self._client: Any = None
        self.decisions: list[tuple[DrInstruction, bool]] = []
        self.refusal: str | None = None

    @property
    def site(self) -> str:
        return self.config.ven_id

    @property
    def registered(self) -> bool:
        return self._client is not None and self._client.registration_id is not None

    async def start(self) -> bool:
        """Register, offer telemetry and start polling; False (and ``refusal`` set) if the VTN refused."""
        c = self.config
        client = OpenADRClient(
            ven_name=c.ven_id, ven_id=c.ven_id, vtn_url=c.vtn_url, cert=str(c.credentials.cert_path),
            key=str(c.credentials.key_path), ca_file=str(c.ca_path), vtn_fingerprint=c.vtn_fingerprint,
            show_fingerprint=False,
        )
        client.add_handler("on_event", self._on_event)
        client.add_handler("on_update_event", self._on_update_event)
        client.add_report(
            callback=self._report, resource_id=c.ven_id, measurement="REAL_POWER", unit="W", scale="k",
            sampling_rate=c.report_interval, report_duration=c.report_interval,
            report_specifier_id=f"{c.ven_id}-telemetry", r_id=f"{c.ven_id}-load",
        )
        client.add_hook("after_parse_xml", self._note_refusal)
        self._client = client
        await client.run()
        if not self.registered:
            self.refusal = self.refusal or "no valid reply from the VTN (connection or TLS handshake refused)"
            return False
        return True

    async def stop(self) -> None:
        if self._client is not None and self._client.client_session is not None:
            await self._client.stop()

    def _note_refusal(self, message_type: str, payload: Mapping[str, Any]) -> None:
        response = payload.get("response") or {}
        if response.get("response_code", 200) != 200:
            self.refusal = f"{response.get('response_code')} {response.get('response_description')} ({message_type})"

    def _report(self) -> list[tuple[dt.datetime, float]]:
        # stamped before reading, so that the sample's interval is the one the site was in when read
        now = dt.datetime.now(dt.UTC)
        return [(now, float(self._load_kw()))]

    def _decide(self, event: Mapping[str, Any]) -> str:
        instruction = instruction_from(self.site, event)
        if instruction is None or instruction.cancelled:
            return OPT_OUT
        opted_in = bool(self._policy(instruction))
        self.decisions.append((instruction, opted_in))
        if opted_in:
            self._on_instruction(instruction)  # an exception here makes openleadr opt out
        return OPT_IN if opted_in else OPT_OUT

    async def _on_event(self, event: dict[str, Any]) -> str:
        return self._decide(event)

    async def _on_update_event(self, event: dict[str, Any]) -> str:
        event_id = event["event_descriptor"]["event_id"]
        previous = next((d for d in reversed(self.decisions) if d[0].event_id == event_id), None)
        instruction = instruction_from(self.site, event)
        if instruction is not None and instruction.cancelled:
            if previous is not None and previous[1]:
                self._on_instruction(replace(previous[0], cancelled=True))
            self.decisions.append((instruction, False))
            return OPT_IN if previous is not None and previous[1] else OPT_OUT
        return self._decide(event)


class VenFleet:
    """The field's VENs on one asyncio thread (openleadr clients are coroutines, cheap to run together)."""

    def __init__(self, vens: Sequence[SiteVen]) -> None:
        self.vens = {v.site: v for v in vens}
        self._loop = LoopThread("openadr-vens")

    def start(self, timeout: float = 30.0) -> dict[str, bool]:
        """Start every VEN; site → registered. Refused VENs stay stopped (see their ``refusal``)."""
        self._loop.start()

        async def _all() -> dict[str, bool]:
            return {site: await ven.start() for site, ven in self.vens.items()}

        return self._loop.run(_all(), timeout)

    def stop(self) -> None:
        if not self._loop.running:
            return

        async def _all() -> None:
            for ven in self.vens.values():
                await ven.stop()

        self._loop.run(_all())
        self._loop.stop()
