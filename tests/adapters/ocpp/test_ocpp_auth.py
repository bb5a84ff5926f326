"""Security profiles 1–3: unknown stations and bad credentials are refused in the HTTP handshake (404/401);
passwords are provisioned to 0600 files and kept at the centre only as salted hashes."""

from __future__ import annotations

import json
import ssl
import stat

import pytest
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.headers import build_authorization_basic
from websockets.sync.client import connect

from gridmesh.adapters.ocpp import (
    CentralConfig,
    CentralSystem,
    MemorySink,
    PasswordStore,
    SecurityProfile,
    StationConfig,
    client_tls_context,
    load_charger_secrets,
    make_station,
    provision_passwords,
    server_tls_context,
)
from gridmesh.adapters.ocpp.auth import HASH_FILE, SECRET_FILE, PasswordHash, charger_of_path
from support.brokers import wait_for


def _status(url: str, *, user: str | None = None, password: str | None = None, **kwargs) -> int:
    """The HTTP status of the handshake: 101 when the WebSocket opened."""
    headers = {} if user is None else {"Authorization": build_authorization_basic(user, password or "")}
    try:
        with connect(url, subprotocols=kwargs.pop("subprotocols", ["ocpp2.0.1"]), additional_headers=headers, **kwargs):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def test_provisioning_writes_private_files_and_salted_hashes(tmp_path):
    first = provision_passwords(["a", "b"], tmp_path)
    assert sorted(first) == ["a", "b"] and all(len(p) == 40 for p in first.values())
    again = provision_passwords(["a", "b", "c"], tmp_path)  # existing stations keep their password
    assert list(again) == ["c"]
    for name in (SECRET_FILE, HASH_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert load_charger_secrets(tmp_path / SECRET_FILE) == {**first, **again}
    hash_text = (tmp_path / HASH_FILE).read_text()
    assert not any(p in hash_text for p in (*first.values(), *again.values()))
    salts = {e["salt"] for e in json.loads(hash_text)["chargers"].values()}
    assert len(salts) == 3
    store = PasswordStore.load(tmp_path / HASH_FILE)
    assert store.verify("a", first["a"]) and not store.verify("a", first["b"]) and not store.verify("z", "x")
    # Equal passwords still get different hashes (the salt).
    assert PasswordHash.of("same").digest != PasswordHash.of("same").digest


def test_paths_name_the_station():
    assert charger_of_path("/ocpp/cp%201?x=1") == "cp 1"
    assert charger_of_path("/other/cp") is None
    assert charger_of_path("/ocpp/") is None


def test_profile_1_refuses_unknown_stations_and_bad_credentials(centre, credentials):
    system, _ = centre()
    good = credentials.passwords["cp-201"]
    assert _status(system.url + "cp-201", user="cp-201", password=good) == 101
    assert _status(system.url + "nobody", user="nobody", password=good) == 404
    assert _status(system.url.replace("/ocpp/", "/else/") + "cp-201", user="cp-201", password=good) == 404
    assert _status(system.url + "cp-201") == 401  # no credentials
    assert _status(system.url + "cp-201", user="cp-201", password=good[:-1] + "x") == 401
    other = credentials.passwords["cp-16"]
    assert _status(system.url + "cp-201", user="cp-16", password=other) == 401  # someone else's login
    assert _status(system.url + "cp-201", user="cp-201", password=good, subprotocols=["ocpp9"]) == 400
    assert system.connected() == []  # the one good login has closed again; no refused one ever connected


def test_config_problems_are_named(registry, credentials):
    with pytest.raises(ValueError, match="needs a TLS context"):
        config = CentralConfig(profile=SecurityProfile.BASIC_TLS, passwords=credentials.store)
        CentralSystem(registry, MemorySink(), config)
    with pytest.raises(ValueError, match="needs passwords"):
        CentralSystem(registry, MemorySink(), CentralConfig())


def test_profile_2_basic_auth_over_tls(centre, fleet, credentials, tls_files):
    tls = server_tls_context(tls_files.server_cert, tls_files.server_key)
    system, _ = centre(profile=SecurityProfile.BASIC_TLS, tls=tls)
    assert system.url.startswith("wss://127.0.0.1:")
    client = client_tls_context(tls_files.ca)
    password = credentials.passwords["cp-201"]
    assert _status(system.url + "cp-201", user="cp-201", password="wrong", ssl=client) == 401
    station = make_station(
        "2.0.1", StationConfig("cp-201", system.url, password=password, tls=client, meter_period_s=0.05)
    )
    fleet([station])
    wait_for(lambda: system.state.chargers().get("cp-201") is not None and station.booted, 10, "a boot over TLS")
    assert system.connected() == ["cp-201"]
    # A client that does not trust the centre's certificate never gets to send its password.
    with pytest.raises(ssl.SSLCertVerificationError):
        _status(system.url + "cp-16", user="cp-16", password="x", ssl=ssl.create_default_context())


def test_profile_3_client_certificates(centre, tls_files):
    tls = server_tls_context(tls_files.server_cert, tls_files.server_key, client_ca_file=tls_files.ca)
    system, _ = centre(profile=SecurityProfile.CLIENT_CERT, tls=tls, passwords=None)
    cert, key = tls_files.client["cp-16"]
    own = client_tls_context(tls_files.ca, cert_file=cert, key_file=key)
    assert _status(system.url + "cp-16", ssl=own, subprotocols=["ocpp1.6"]) == 101
    assert _status(system.url + "cp-201", ssl=own) == 401  # a valid certificate, but for another station
    cert, key = tls_files.client["intruder"]
    foreign = client_tls_context(tls_files.ca, cert_file=cert, key_file=key)
    assert _status(system.url + "cp-16", ssl=foreign) == 401
    # No certificate: the server's TLS layer aborts (TLS 1.3 reports it after the client's side completed).
    with pytest.raises((ssl.SSLError, ConnectionError, WebSocketException)):
        _status(system.url + "cp-16", ssl=client_tls_context(tls_files.ca))
    assert system.state.chargers()["cp-16"].connected is False
