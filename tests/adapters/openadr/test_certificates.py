"""X.509 provisioning: chain of trust, key file modes, fingerprints in openleadr's form."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from gridmesh.adapters.openadr.certificates import provision_pki
from gridmesh.adapters.openadr.vtn import VtnError, registry_from_scenario
from gridmesh.model.elements import Bus, Site
from gridmesh.model.network import Network
from gridmesh.model.scenario import Scenario


def test_provisioning_signs_every_party_with_the_ca(tmp_path: Path) -> None:
    pki = provision_pki(tmp_path, ["mg-1", "mg-2"])
    ca = x509.load_pem_x509_certificate(pki.ca.cert_path.read_bytes())
    assert set(pki.vens) == {"mg-1", "mg-2"}
    for party in (pki.vtn, *pki.vens.values()):
        cert = x509.load_pem_x509_certificate(party.cert_path.read_bytes())
        assert cert.issuer == ca.subject
        ca_key = ca.public_key()
        assert isinstance(ca_key, ec.EllipticCurvePublicKey)
        cert.verify_directly_issued_by(ca)  # raises if the signature does not verify
        assert stat.S_IMODE(party.key_path.stat().st_mode) == 0o600
        # openleadr's fingerprint: the last 10 bytes of the DER certificate's SHA-256, colon-separated
        digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest().upper()[-20:]
        assert party.fingerprint == ":".join(digest[i:i + 2] for i in range(0, 20, 2))
    vtn = x509.load_pem_x509_certificate(pki.vtn.cert_path.read_bytes())
    names = vtn.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert len({c.fingerprint for c in pki.vens.values()} | {pki.vtn.fingerprint}) == 3
    assert pki.ven_fingerprints == {v: c.fingerprint for v, c in pki.vens.items()}


def test_registry_has_one_ven_per_site_and_needs_their_certificates(tmp_path: Path) -> None:
    network = Network.from_elements([Bus(id="b1", vn_kv=0.4), Site(id="mg-1", buses=("b1",)),
                                     Site(id="mg-2", buses=("b1",))])
    scenario = Scenario("s", network)
    pki = provision_pki(tmp_path / "full", ["mg-1", "mg-2"])
    assert registry_from_scenario(scenario, pki) == pki.ven_fingerprints
    with pytest.raises(VtnError, match="no VEN certificate for site\\(s\\) mg-2"):
        registry_from_scenario(scenario, provision_pki(tmp_path / "part", ["mg-1"]))
