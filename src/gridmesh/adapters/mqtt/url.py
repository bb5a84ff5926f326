"""Broker addresses as one URL, so the CLI takes ``--mqtt mqtt://user:pass@host:port`` and nothing else.

Accepted forms::

    mqtt://host[:port]                 plain TCP, port 1883 by default
    mqtts://host[:port]                TLS with the system's CA store, port 8883 by default
    mqtts://host?ca=/etc/ssl/my-ca.pem TLS trusting only that CA file
    mqtt://user:secret@host?client_id=centre-2

User name and password may be percent-encoded (``%40`` for ``@``). ``client_id`` overrides the id the
program would use, so two centres on one broker can be told apart without code changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from gridmesh.errors import GridmeshError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_OPTIONS = ("ca", "client_id")
_EXAMPLE = "mqtt://user:password@host:1883 or mqtts://host:8883?ca=/path/ca.pem"


class MqttUrlError(GridmeshError, ValueError):
    """A broker URL cannot be used; the message says which part is wrong and shows a valid form."""


@dataclass(frozen=True, slots=True)
class MqttUrl:
    """A parsed broker address. ``password`` is kept out of ``repr`` so it does not end up in logs."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_path: Path | None = None
    client_id: str | None = None

    def __repr__(self) -> str:
        return f"MqttUrl({self.display()!r})"

    def display(self) -> str:
        """The address without its password, safe to print."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def parse_mqtt_url(url: str) -> MqttUrl:
    """Parse ``mqtt://`` or ``mqtts://`` URLs; raises :class:`MqttUrlError` naming the bad part."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise MqttUrlError(f"cannot parse broker URL {url!r} ({exc}); use {_EXAMPLE}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise MqttUrlError(f"broker URL {url!r} must start with mqtt:// or mqtts://; use {_EXAMPLE}")
    if not parts.hostname:
        raise MqttUrlError(f"broker URL {url!r} has no host; use {_EXAMPLE}")
    if parts.path not in ("", "/"):
        raise MqttUrlError(f"broker URL {url!r} has a path {parts.path!r}; MQTT URLs take none, remove it")
    if port == 0:
        raise MqttUrlError(f"broker URL {url!r} has port 0; give a port between 1 and 65535")
    options = _options(url, parts.query)
    if "ca" in options and scheme != "mqtts":
        raise MqttUrlError(f"broker URL {url!r} sets ?ca= without TLS; use mqtts:// to verify against a CA")
    ca_path = Path(options["ca"]) if "ca" in options else None
    if ca_path is not None and not ca_path.is_file():
        raise MqttUrlError(f"CA file {ca_path} given in the broker URL does not exist; check the path")
    return MqttUrl(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        tls=scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        ca_path=ca_path,
        client_id=options.get("client_id"),
    )


def _options(url: str, query: str) -> dict[str, str]:
    values = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(values) - set(_OPTIONS))
    if unknown:
        raise MqttUrlError(f"broker URL {url!r} has unknown option(s) {unknown}; known: {list(_OPTIONS)}")
    options: dict[str, str] = {}
    for key, given in values.items():
        if len(given) != 1 or not given[0]:
            raise MqttUrlError(f"broker URL {url!r}: option {key!r} needs exactly one non-empty value")
        options[key] = given[0]
    return options
