"""The fixes gridmesh applies to openleadr 0.5.36, installed when the adapter is imported.

openleadr verifies every XML signature with one module-level ``signxml.XMLVerifier`` (``VERIFIER`` in
``openleadr.messaging``), and ``XMLVerifier.verify`` keeps per-call state on the instance (config, parser,
id attributes). When a VTN and VENs run in one process — tests, ``gridmesh run`` — they verify from two
threads and corrupt each other's checks: genuine messages are refused with "403 Invalid Signature"
(seen with 20 VENs at 1 s polling). A fresh verifier per call removes the shared state; verification
itself is unchanged.

openleadr's client also forces its logger to INFO on import, which logs every message with its payload;
gridmesh puts it back to WARNING (raise it again with ``logging.getLogger("openleadr")`` to debug).
"""

from __future__ import annotations

import logging
from typing import Any

import openleadr.messaging
from signxml.verifier import XMLVerifier


class VerifierPerCall:
    """Drop-in for openleadr's shared verifier: a new ``XMLVerifier`` for every ``verify`` call."""

    def verify(self, *args: Any, **kwargs: Any) -> Any:
        return XMLVerifier().verify(*args, **kwargs)


def install() -> None:
    """Idempotent: replace ``openleadr.messaging.VERIFIER`` with a ``VerifierPerCall``; quiet the logger."""
    if not isinstance(openleadr.messaging.VERIFIER, VerifierPerCall):
        openleadr.messaging.VERIFIER = VerifierPerCall()
        logging.getLogger("openleadr").setLevel(logging.WARNING)
