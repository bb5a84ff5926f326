"""Edge agent keys: one Ed25519 key per microgrid beside the keyrings, the site's device credentials and the
centre's public key with it, and the public halves for the field and the centre."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gridmesh.model.io.scenario_yaml import read_scenario
from gridmesh.security.edge_keys import (
    EDGE_PUBLIC_FILE,
    EdgeKeyring,
    agent_credentials,
    agent_id,
    edge_file,
    load_edge_keyring,
    provision_edge_keys,
)
from gridmesh.security.keys import (
    CENTRE_FILE,
    FIELD_FILE,
    CentreKeyring,
    FieldKeyring,
    KeyAlgorithm,
    KeyringError,
    provision_keyrings,
)
from gridmesh.security.signing import sign, verify
from gridmesh.telemetry.catalogue import Catalogue, catalogue_of
from gridmesh.telemetry.envelope import Command


@pytest.fixture(scope="module")
def catalogue(small_scenario_file: Path) -> Catalogue:
    return catalogue_of(read_scenario(small_scenario_file).network)


@pytest.fixture
def folder(catalogue: Catalogue, tmp_path: Path) -> Path:
    field_ring, centre_ring = provision_keyrings(catalogue.devices)
    field_ring.save(tmp_path / FIELD_FILE)
    centre_ring.save(tmp_path / CENTRE_FILE)
    return tmp_path


def test_an_agent_gets_its_own_key_its_sites_credentials_and_the_centres_public_key(
    catalogue: Catalogue, folder: Path
) -> None:
    (ring,) = provision_edge_keys(folder, catalogue, ["mg"]).values()
    centre = CentreKeyring.load(folder / CENTRE_FILE)
    site_devices = {d.id for d in catalogue.of_site("mg")}
    assert set(ring.credentials) == site_devices and len(site_devices) < len(catalogue)  # nothing beyond the PCC
    assert all(ring.credentials[d] == centre.credentials[d] for d in site_devices)
    assert ring.centre_public == centre.centre_public
    assert ring.secret.device == agent_id("mg") and ring.secret.alg is KeyAlgorithm.ED25519
    for name in (edge_file("mg"), EDGE_PUBLIC_FILE):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    stored = json.loads((folder / edge_file("mg")).read_text())
    assert centre.command_secret.secret.hex() not in json.dumps(stored)  # the centre's signing key stays home
    assert load_edge_keyring(folder, "mg").credential == ring.credential == agent_credentials(folder)["mg"]


def test_a_command_signed_by_the_agent_verifies_with_its_public_key_only(catalogue: Catalogue, folder: Path) -> None:
    ring = provision_edge_keys(folder, catalogue, ["mg"])["mg"]
    command = sign(Command("battery-bess", 1, 5, "set-power", -1000.0, 10, agent_id("mg")), ring.secret)
    assert verify(command, agent_credentials(folder)["mg"])
    assert not verify(command, FieldKeyring.load(folder / FIELD_FILE).centre_credential)
    as_centre = ring.as_centre_keyring()
    assert as_centre.command_secret == ring.secret and as_centre.credentials == ring.credentials


def test_provisioning_again_keeps_the_agents_key(catalogue: Catalogue, folder: Path) -> None:
    first = provision_edge_keys(folder, catalogue, ["mg"])["mg"]
    again = provision_edge_keys(folder, catalogue, ["mg"])["mg"]
    assert again.secret == first.secret
    assert EdgeKeyring.load(folder / edge_file("mg")).secret == first.secret


def test_missing_keys_say_which_command_provisions_them(catalogue: Catalogue, tmp_path: Path, folder: Path) -> None:
    with pytest.raises(KeyringError, match="gridmesh keys provision"):
        provision_edge_keys(tmp_path / "empty", catalogue, ["mg"])
    with pytest.raises(KeyringError, match="gridmesh keys edge"):
        load_edge_keyring(folder, "mg")
    assert agent_credentials(folder) == {}


def test_a_device_without_a_key_is_named(catalogue: Catalogue, tmp_path: Path) -> None:
    devices = [d for d in catalogue.devices if d != "battery-bess"]
    field_ring, centre_ring = provision_keyrings(devices)
    field_ring.save(tmp_path / FIELD_FILE)
    centre_ring.save(tmp_path / CENTRE_FILE)
    with pytest.raises(KeyringError, match=r"device\(s\) of 'mg' have no key \(first: battery-bess\)"):
        provision_edge_keys(tmp_path, catalogue, ["mg"])
