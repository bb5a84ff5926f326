"""The openleadr fix: a fresh signxml verifier per message (the shared one breaks with VTN and VENs in one
process: 182 genuine messages refused as "Invalid Signature" in a 20-VEN run without it, none with it)."""

from __future__ import annotations

from pathlib import Path

import openleadr.messaging
import pytest
from openleadr import utils
from openleadr.messaging import create_message, validate_xml_schema
from signxml.exceptions import InvalidSignature

import gridmesh.adapters.openadr  # noqa: F401 - importing the adapter installs the fix
from gridmesh.adapters.openadr.certificates import provision_pki
from gridmesh.adapters.openadr.compat import VerifierPerCall, install


def test_importing_the_adapter_installs_a_verifier_per_call(tmp_path: Path) -> None:
    assert isinstance(openleadr.messaging.VERIFIER, VerifierPerCall)
    install()  # idempotent
    assert isinstance(openleadr.messaging.VERIFIER, VerifierPerCall)
    pki = provision_pki(tmp_path, ["a"])
    signed = create_message("oadrPoll", cert=pki.vens["a"].cert_path.read_bytes(),
                            key=pki.vens["a"].key_path.read_bytes(), ven_id="a")
    tree = validate_xml_schema(signed)
    openleadr.messaging.validate_xml_signature(tree, cert_fingerprint=pki.vens["a"].fingerprint)  # verifies
    tampered = validate_xml_schema(signed.replace("<ei:venID>a</ei:venID>", "<ei:venID>b</ei:venID>"))
    with pytest.raises(InvalidSignature):  # the digest no longer matches
        openleadr.messaging.VERIFIER.verify(tampered, x509_cert=utils.ensure_bytes(utils.extract_pem_cert(tampered)),
                                            expect_references=2)
