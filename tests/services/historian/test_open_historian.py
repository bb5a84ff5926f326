"""``open_historian`` picks the backend from the URL and names the accepted forms when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmesh.services.historian.embedded import EmbeddedHistorian
from gridmesh.services.historian.open import open_historian
from gridmesh.services.historian.postgres import PostgresHistorian


@pytest.mark.parametrize("form", ["path", "str", "duckdb:", "duckdb://"])
def test_paths_and_duckdb_urls_open_the_embedded_historian(tmp_path: Path, form: str) -> None:
    target = tmp_path / "data" / "historian.duckdb"
    url = {"path": target, "str": str(target), "duckdb:": f"duckdb:{target}", "duckdb://": f"duckdb://{target}"}[form]
    store = open_historian(url)
    assert isinstance(store, EmbeddedHistorian)
    assert store.path == target
    store.close()


def test_a_postgresql_url_opens_the_server_historian_in_its_schema(pg_dsn: str, pg_schema: str) -> None:
    store = open_historian(f"{pg_dsn}?schema={pg_schema}&connect_timeout=5")
    assert isinstance(store, PostgresHistorian)
    assert store.schema == pg_schema
    assert store.dsn == f"{pg_dsn}?connect_timeout=5"
    store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///tmp/h.db", "embedded historian is DuckDB"),
        ("mysql://host/db", "unknown scheme 'mysql'"),
        ("duckdb:", "names no file"),
    ],
)
def test_other_urls_are_refused_with_the_accepted_forms(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        open_historian(url)
    assert "postgresql://" in str(error.value)
