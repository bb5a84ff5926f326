"""Pick the historian backend from one setting: a PostgreSQL URL or a DuckDB file.

Accepted forms::

    postgresql://user@host:5432/db[?schema=name]   (also postgres://)  -> PostgresHistorian
    duckdb:path/to/historian.duckdb, duckdb:///abs/path.duckdb         -> EmbeddedHistorian
    path/to/historian.duckdb  (a plain path or pathlib.Path)           -> EmbeddedHistorian

``schema`` is taken out of the PostgreSQL URL before it reaches libpq (which would refuse it).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gridmesh.services.historian.base import Historian
from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.services.historian.postgres import PostgresHistorian

ACCEPTED_FORMS = "postgresql://user@host:5432/db[?schema=name], duckdb:path/to/historian.duckdb, or a plain file path"


def open_historian(url: str | Path) -> Historian:
    """Open (creating if needed) the historian that ``url`` names; see the module docstring for the forms."""
    if isinstance(url, Path):
        return EmbeddedHistorian(url)
    scheme, sep, rest = url.partition(":")
    if not sep or len(scheme) == 1 or "/" in scheme or "\\" in scheme:  # no scheme, or a Windows drive
        return EmbeddedHistorian(Path(url))
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres"):
        dsn, schema = _split_schema(url)
        return PostgresHistorian(dsn, schema=schema) if schema else PostgresHistorian(dsn)
    if scheme == "duckdb":
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise ValueError(f"historian URL {url!r} names no file; accepted forms: {ACCEPTED_FORMS}")
        return EmbeddedHistorian(Path(path))
    if scheme == "sqlite":
        raise ValueError(
            f"historian URL {url!r}: the embedded historian is DuckDB (chosen by benchmarks/bench_historian.py), "
            f"not SQLite; use duckdb:{rest.lstrip('/') or 'historian.duckdb'}. Accepted forms: {ACCEPTED_FORMS}"
        )
    raise ValueError(f"historian URL {url!r} has an unknown scheme {scheme!r}; accepted forms: {ACCEPTED_FORMS}")


def _split_schema(url: str) -> tuple[str, str]:
    """The URL without its ``schema`` query parameter, and that schema ("" when absent)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    kept = [(key, value) for key, value in query if key != "schema"]
    return urlunsplit(parts._replace(query=urlencode(kept))), (schemas[-1] if schemas else "")
