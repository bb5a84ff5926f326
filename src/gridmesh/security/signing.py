"""Sign and verify messages over their canonical bytes (:func:`gridmesh.telemetry.envelope.canonical_bytes`).

The signature covers the message with ``alg`` set and ``sig`` empty, so the algorithm cannot be swapped
after signing. ``sig`` carries the raw signature (64 bytes for Ed25519, 32 for HMAC-SHA256) in standard
base64. Key objects are cached per key, since loading an Ed25519 key costs as much as a verification.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from functools import lru_cache
from typing import TypeVar

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gridmesh.security.keys import DeviceCredential, DeviceSecret, KeyAlgorithm
from gridmesh.telemetry.envelope import Signed, canonical_bytes

M = TypeVar("M", bound=Signed)
SIGNATURE_BYTES = {KeyAlgorithm.ED25519: 64, KeyAlgorithm.HMAC_SHA256: 32}
_KEY_CACHE = 1 << 16  # more than the devices of the largest scenario; a key object is ~100 bytes


@lru_cache(maxsize=_KEY_CACHE)
def _private_key(raw: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(raw)


@lru_cache(maxsize=_KEY_CACHE)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def signature(data: bytes, secret: DeviceSecret) -> bytes:
    """The raw signature of ``data``: Ed25519, or HMAC-SHA256 with the shared key."""
    if secret.alg is KeyAlgorithm.HMAC_SHA256:
        return hmac.digest(secret.secret, data, hashlib.sha256)
    return _private_key(secret.secret).sign(data)


def sign(message: M, secret: DeviceSecret) -> M:
    """A copy of ``message`` with ``alg`` set to the key's algorithm and ``sig`` to the base64 signature."""
    unsigned = msgspec.structs.replace(message, alg=secret.alg.value, sig="")
    raw = signature(canonical_bytes(unsigned), secret)
    return msgspec.structs.replace(unsigned, sig=binascii.b2a_base64(raw, newline=False).decode("ascii"))


def verify(message: Signed, credential: DeviceCredential) -> bool:
    """True only if ``sig`` is the credential's signature of the message (HMAC compared in constant time).

    Never raises on message content: a wrong ``alg``, bad base64 or a wrong length is simply False.
    """
    alg = credential.alg
    if message.alg != alg.value:
        return False
    try:
        raw = binascii.a2b_base64(message.sig, strict_mode=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) != SIGNATURE_BYTES[alg]:
        return False
    data = canonical_bytes(message)
    if alg is KeyAlgorithm.HMAC_SHA256:
        return hmac.compare_digest(hmac.digest(credential.key, data, hashlib.sha256), raw)
    try:
        _public_key(credential.key).verify(raw, data)
    except InvalidSignature:
        return False
    return True
