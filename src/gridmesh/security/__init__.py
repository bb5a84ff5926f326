"""Security: per-device keys and message signing (Ed25519, or HMAC-SHA256 for constrained devices).

Keys live on disk in two keyrings (field and centre, mode 0600); signatures cover a message's canonical
bytes so a device in any language can produce them.
"""

from gridmesh.security.keys import (
    CentreKeyring,
    DeviceCredential,
    DeviceSecret,
    FieldKeyring,
    KeyAlgorithm,
    KeyringError,
    ensure_keyrings,
    provision,
    provision_keyrings,
)
from gridmesh.security.signing import sign, verify

__all__ = [
    "CentreKeyring",
    "DeviceCredential",
    "DeviceSecret",
    "FieldKeyring",
    "KeyAlgorithm",
    "KeyringError",
    "ensure_keyrings",
    "provision",
    "provision_keyrings",
    "sign",
    "verify",
]
