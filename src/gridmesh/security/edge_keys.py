"""Keys of the microgrid edge agents: one Ed25519 signing key per microgrid, provisioned beside the keyrings.

An edge agent commands its own site's devices and reports to the centre, so it needs (and is given
nothing more than):

* its own signing key (commands to its devices, reports to the centre);
* the credentials of its site's devices (to verify their telemetry as the centre does; for HMAC meters
  this is their shared key, so the file is as secret as those keys);
* the centre's public command key (to verify the plans the centre sends it).

That is one file per site, ``edge-{site}-keys.json`` (mode 0600), to install on the site's edge box. The
public halves of every agent's key go to ``edge-public.json``: the field (a device of site S accepts a
command signed by the centre or by the agent of S, never by another site's agent) and the centre (it
verifies the agents' reports) read it. Both are derived from ``field-keys.json`` and ``centre-keys.json``
in the same folder, which must exist (``gridmesh keys provision``). Provisioning again keeps each agent's
key and refreshes the rest (devices added to the scenario, a re-provisioned centre key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gridmesh.security.keys import (
    CENTRE_FILE,
    FIELD_FILE,
    CentreKeyring,
    DeviceCredential,
    DeviceSecret,
    FieldKeyring,
    KeyAlgorithm,
    KeyringError,
    algorithm_of,
    b64,
    check_key,
    device_keys,
    new_secret,
    read_document,
    unb64,
    write_private,
)
from gridmesh.telemetry.catalogue import Catalogue

AGENT_PREFIX = "agent-"  # an agent's identity is ``agent-{site}`` (``Command.issuer``, report signer)
EDGE_PUBLIC_FILE = "edge-public.json"
PROVISION_HINT = "provision them with `gridmesh keys edge SCENARIO --out DIR` (after `gridmesh keys provision`)"


def agent_id(site: str) -> str:
    """The identity of the edge agent of microgrid ``site``."""
    return f"{AGENT_PREFIX}{site}"


def edge_file(site: str) -> str:
    """File name of the agent keyring of ``site`` in the keyrings' folder."""
    return f"edge-{site}-keys.json"


@dataclass
class EdgeKeyring:
    """What the edge agent of one microgrid holds; see the module docstring."""

    site: str
    secret: DeviceSecret  # the agent's Ed25519 key (``device`` = :func:`agent_id`)
    credentials: dict[str, DeviceCredential]  # the site's devices
    centre_public: bytes

    @property
    def credential(self) -> DeviceCredential:
        """The agent's public key: what its devices and the centre verify it with."""
        return self.secret.credential()

    @property
    def centre_credential(self) -> DeviceCredential:
        return FieldKeyring({}, self.centre_public).centre_credential

    def as_centre_keyring(self) -> CentreKeyring:
        """The site's slice as a :class:`CentreKeyring`, the agent's key as the command key: what the
        ingest (device credentials) and the command service (signing key) take."""
        return CentreKeyring(dict(self.credentials), self.secret)

    @classmethod
    def load(cls, path: Path) -> EdgeKeyring:
        document = read_document(path, "edge")
        site = document.get("site")
        if not isinstance(site, str) or not site:
            raise KeyringError(f"{path}: `site` must be the microgrid id")
        credentials = {d: DeviceCredential(d, alg, key) for d, (alg, key) in device_keys(document, "key", path).items()}
        secret = DeviceSecret(
            agent_id(site), KeyAlgorithm.ED25519, unb64(document.get("agent_secret"), f"{path}: agent_secret")
        )
        centre_public = unb64(document.get("centre_public"), f"{path}: centre_public")
        check_key("centre", KeyAlgorithm.ED25519, centre_public, "public key")
        return cls(site, secret, credentials, centre_public)

    def save(self, path: Path) -> None:
        devices = {d: {"alg": c.alg.value, "key": b64(c.key)} for d, c in self.credentials.items()}
        write_private(
            path,
            {
                "kind": "edge",
                "format": 1,
                "site": self.site,
                "agent_secret": b64(self.secret.secret),
                "centre_public": b64(self.centre_public),
                "devices": devices,
            },
        )


def load_edge_keyring(directory: Path, site: str) -> EdgeKeyring:
    """The keyring of ``site``'s agent from ``directory``.

    Raises:
        KeyringError: no such file (the message says how to provision it), or it is damaged.
    """
    path = directory / edge_file(site)
    if not path.exists():
        raise KeyringError(f"no key for the edge agent of {site!r} in {directory} — {PROVISION_HINT}")
    ring = EdgeKeyring.load(path)
    if ring.site != site:
        raise KeyringError(f"{path} holds the keys of site {ring.site!r}, not {site!r} — re-provision")
    return ring


def agent_credentials(directory: Path) -> dict[str, DeviceCredential]:
    """site → public key of its agent, from ``edge-public.json`` (empty when no agent is provisioned)."""
    path = directory / EDGE_PUBLIC_FILE
    if not path.exists():
        return {}
    document = read_document(path, "edge-public")
    out: dict[str, DeviceCredential] = {}
    for site, entry in document["devices"].items():
        where = f"{path}: {site}"
        if not isinstance(entry, dict):
            raise KeyringError(f"{where}: expected an object with `alg` and `key`")
        out[site] = DeviceCredential(
            agent_id(site), algorithm_of(entry.get("alg"), where), unb64(entry.get("key"), where)
        )
    return out


def provision_edge_keys(directory: Path, catalogue: Catalogue, sites: Iterable[str]) -> dict[str, EdgeKeyring]:
    """Write (or refresh) the agent keyring of every site in ``sites`` and ``edge-public.json``.

    Each agent keeps the key it already has; its devices' credentials and the centre's public key are
    taken afresh from the keyrings in ``directory``.

    Raises:
        KeyringError: ``field-keys.json`` or ``centre-keys.json`` is missing or damaged, or a device of
            a site has no credential in the centre keyring.
    """
    for name in (FIELD_FILE, CENTRE_FILE):
        if not (directory / name).exists():
            raise KeyringError(
                f"{directory / name} not found — provision the device keys first with "
                "`gridmesh keys provision SCENARIO --out DIR`"
            )
    centre_ring = CentreKeyring.load(directory / CENTRE_FILE)
    rings: dict[str, EdgeKeyring] = {}
    for site in sites:
        devices = [d.id for d in catalogue.of_site(site)]
        missing = [d for d in devices if d not in centre_ring.credentials]
        if missing:
            raise KeyringError(
                f"{len(missing)} device(s) of {site!r} have no key (first: {missing[0]}) — run "
                "`gridmesh keys provision SCENARIO --out DIR` to add them"
            )
        path = directory / edge_file(site)
        secret = EdgeKeyring.load(path).secret if path.exists() else new_secret(agent_id(site), KeyAlgorithm.ED25519)
        ring = EdgeKeyring(site, secret, {d: centre_ring.credentials[d] for d in devices}, centre_ring.centre_public)
        ring.save(path)
        rings[site] = ring
    known = agent_credentials(directory)
    known.update({site: ring.credential for site, ring in rings.items()})
    _save_public(directory / EDGE_PUBLIC_FILE, known)
    return rings


def _save_public(path: Path, credentials: Mapping[str, DeviceCredential]) -> None:
    devices = {site: {"alg": c.alg.value, "key": b64(c.key)} for site, c in credentials.items()}
    write_private(path, {"kind": "edge-public", "format": 1, "devices": devices})
