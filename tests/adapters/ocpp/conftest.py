"""Fixtures for the OCPP tests: chargers, provisioned passwords, a running centre, a fleet thread, TLS files."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gridmesh.adapters.ocpp import (
    CentralConfig,
    CentralSystem,
    ChargerBinding,
    ChargerRegistry,
    FleetThread,
    MemorySink,
    PasswordStore,
    SimStation,
    provision_passwords,
)
from gridmesh.adapters.ocpp.auth import HASH_FILE

CHARGERS = ("cp-201", "cp-16", "cp-spare")


@pytest.fixture
def registry() -> ChargerRegistry:
    return ChargerRegistry(ChargerBinding(c, "bus-1", 11.0, 1, ("mg",)) for c in CHARGERS)


@dataclass
class Credentials:
    directory: Path
    passwords: dict[str, str]

    @property
    def store(self) -> PasswordStore:
        return PasswordStore.load(self.directory / HASH_FILE)


@pytest.fixture
def credentials(tmp_path: Path) -> Credentials:
    return Credentials(tmp_path, provision_passwords(CHARGERS, tmp_path))


@pytest.fixture
def centre(
    registry: ChargerRegistry, credentials: Credentials
) -> Iterator[Callable[..., tuple[CentralSystem, MemorySink]]]:
    """``centre(**config)``: a started central system (profile 1 with the provisioned passwords) and its sink."""
    started: list[CentralSystem] = []

    def make(**options: Any) -> tuple[CentralSystem, MemorySink]:
        sink = MemorySink()
        config = replace(CentralConfig(passwords=credentials.store, response_timeout_s=5.0), **options)
        system = CentralSystem(registry, sink, config).start()
        started.append(system)
        return system, sink

    yield make
    for system in started:
        system.stop()


@pytest.fixture
def fleet() -> Iterator[Callable[[Sequence[SimStation]], FleetThread]]:
    running: list[FleetThread] = []

    def make(stations: Sequence[SimStation]) -> FleetThread:
        thread = FleetThread(stations).start()
        running.append(thread)
        return thread

    yield make
    for thread in running:
        thread.stop(drain_timeout_s=5.0)


@dataclass
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client: dict[str, tuple[Path, Path]]  # charger id → (cert, key), signed by the CA


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None, **ext: Any
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if "san" in ext:
        builder = builder.add_extension(x509.SubjectAlternativeName(ext["san"]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    """A self-signed CA, a server certificate for 127.0.0.1 and a client certificate per charger (CN = id)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("gridmesh test CA", ca_key, None)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(
        "127.0.0.1",
        server_key,
        ("gridmesh test CA", ca_key),
        san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
    )
    (tmp_path / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, tmp_path / "server.key")
    clients = {}
    for charger in (*CHARGERS, "intruder"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(charger, key, ("gridmesh test CA", ca_key))
        (tmp_path / f"{charger}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, tmp_path / f"{charger}.key")
        clients[charger] = (tmp_path / f"{charger}.pem", tmp_path / f"{charger}.key")
    return TlsFiles(tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key", clients)
