"""Fake sites, a history source and VEN construction for the OpenADR end-to-end tests."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pandas as pd

from gridmesh.adapters.openadr import Credentials, DrInstruction, DrVtn, OpenAdrPki, OptPolicy, SiteVen, VenConfig

SITES = ("site-a", "site-b")
BASE_KW = 10.0
POLL = dt.timedelta(seconds=1)


class FakeSite:
    """A site whose flexible load drops by the requested kW while an accepted instruction is active."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.instructions: list[DrInstruction] = []
        self._lock = threading.Lock()

    def on_instruction(self, instruction: DrInstruction) -> None:
        with self._lock:
            self.instructions.append(instruction)

    def load_kw(self) -> float:
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            live = {i.event_id: i for i in self.instructions}  # the latest word on each event
        return BASE_KW - sum(i.shed_kw for i in live.values() if i.active_at(now))


class History:
    """Past load the VTN's baseline reads (what the historian would supply): flat ``BASE_KW`` on the
    same intervals of the 20 days before ``grid``'s day."""

    def __init__(self) -> None:
        self.grid = pd.DatetimeIndex([], tz="UTC")

    def __call__(self, ven: str) -> pd.Series:
        stamps = pd.DatetimeIndex([t - pd.Timedelta(days=d) for d in range(1, 21) for t in self.grid]).sort_values()
        return pd.Series(BASE_KW, index=stamps)



def site_ven(vtn: DrVtn, pki: OpenAdrPki, site: FakeSite, credentials: Credentials | None = None,
             policy: OptPolicy | None = None, ca: Path | None = None) -> SiteVen:
    config = VenConfig(site.name, vtn.url, credentials or pki.vens[site.name], ca or pki.ca.cert_path,
                       pki.vtn.fingerprint, report_interval=dt.timedelta(seconds=1))
    if policy is None:
        return SiteVen(config, load_kw=site.load_kw, on_instruction=site.on_instruction)
    return SiteVen(config, load_kw=site.load_kw, on_instruction=site.on_instruction, policy=policy)
