"""X.509 provisioning for OpenADR 2.0b: a private CA, the VTN's server certificate and one client
certificate per VEN.

OpenADR authenticates parties by mutual TLS plus XML signatures made with the same certificate;
openleadr identifies a certificate by its *fingerprint* (the last 10 bytes of the SHA-256 of the DER
form, colon-separated), which the VTN must know for each VEN beforehand (out of band). Provisioning
writes every key with mode 0600 and returns those fingerprints so that the VTN's registry can be built.
Keys are ECDSA P-256, which both TLS and signxml's ``ecdsa-sha256`` XML signatures accept.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from openleadr.utils import certificate_fingerprint

from gridmesh.errors import GridmeshError

CA_NAME = "ca"
VTN_NAME = "vtn"
DEFAULT_VALIDITY = dt.timedelta(days=365)


class CertificateError(GridmeshError):
    """A certificate or key cannot be made or read."""


@dataclass(frozen=True)
class Credentials:
    """One party's certificate and key files, and the fingerprint the other side checks."""

    name: str
    cert_path: Path
    key_path: Path
    fingerprint: str


@dataclass(frozen=True)
class OpenAdrPki:
    """What provisioning produced: the CA file both sides trust, the VTN's and every VEN's credentials."""

    ca: Credentials
    vtn: Credentials
    vens: Mapping[str, Credentials]

    @property
    def ven_fingerprints(self) -> dict[str, str]:
        """VEN id → expected certificate fingerprint: what the VTN's registry is built from."""
        return {ven: c.fingerprint for ven, c in self.vens.items()}


def fingerprint_of(cert_path: Path) -> str:
    """openleadr's fingerprint of a PEM certificate file (the form VTN and VEN compare)."""
    fingerprint: str = certificate_fingerprint(cert_path.read_text())
    return fingerprint


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _save(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Credentials:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(key_path, key_bytes)
    return Credentials(name, cert_path, key_path, fingerprint_of(cert_path))


def _subject(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gridmesh"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def create_ca(directory: Path, *, name: str = CA_NAME, validity: dt.timedelta = DEFAULT_VALIDITY) -> Credentials:
    """A self-signed certificate authority (``{name}.crt``/``.key`` in ``directory``)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_subject(f"gridmesh OpenADR CA {name}"))
        .issuer_name(_subject(f"gridmesh OpenADR CA {name}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _save(directory, name, cert, key)


def _load_ca(ca: Credentials) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    key = serialization.load_pem_private_key(ca.key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{ca.key_path}: the CA key must be an EC key")
    return cert, key


def issue_certificate(
    ca: Credentials,
    directory: Path,
    name: str,
    *,
    hosts: Iterable[str] = (),
    server: bool = False,
    validity: dt.timedelta = DEFAULT_VALIDITY,
) -> Credentials:
    """A leaf certificate signed by ``ca``: a TLS server one (``hosts`` as subject alternative names) for
    the VTN, a TLS client one for a VEN. The common name is ``name`` (the VEN id)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _load_ca(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return _save(directory, name, builder.sign(ca_key, hashes.SHA256()), key)


def provision_pki(
    directory: Path,
    ven_ids: Iterable[str],
    *,
    vtn_hosts: Iterable[str] = ("127.0.0.1", "localhost"),
    validity: dt.timedelta = DEFAULT_VALIDITY,
) -> OpenAdrPki:
    """A CA, a VTN server certificate for ``vtn_hosts`` and one client certificate per VEN, under
    ``directory`` (``vens/{id}.crt``); keys are written 0600."""
    ca = create_ca(directory, validity=validity)
    vtn = issue_certificate(ca, directory, VTN_NAME, hosts=vtn_hosts, server=True, validity=validity)
    vens = {ven: issue_certificate(ca, directory / "vens", ven, validity=validity) for ven in ven_ids}
    return OpenAdrPki(ca=ca, vtn=vtn, vens=vens)
