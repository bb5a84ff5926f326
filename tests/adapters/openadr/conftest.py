"""A provisioned PKI and a running VTN on a free port for the OpenADR end-to-end tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from openadr_support import POLL, SITES, History

from gridmesh.adapters.openadr import DrVtn, OpenAdrPki, VtnConfig, provision_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OpenAdrPki:
    return provision_pki(tmp_path_factory.mktemp("pki"), SITES)


@pytest.fixture(scope="module")
def history() -> History:
    return History()


@pytest.fixture(scope="module")
def vtn(pki: OpenAdrPki, history: History) -> Iterator[DrVtn]:
    config = VtnConfig(poll_interval=POLL, interval=dt.timedelta(seconds=1))
    service = DrVtn(pki.ca, pki.vtn, pki.ven_fingerprints, config=config, history_kw=history)
    service.start()
    yield service
    service.stop()
