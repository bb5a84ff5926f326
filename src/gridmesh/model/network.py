"""The network: every element of a grid, by table and id, plus the site hierarchy."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from gridmesh.model.elements import (
    TABLES,
    Battery,
    Bus,
    Element,
    EvCharger,
    ExternalGrid,
    Generator,
    Line,
    Load,
    Site,
    Switch,
    Transformer,
)

E = TypeVar("E", bound=Element)


def _index(elements: Iterable[E]) -> Mapping[str, E]:
    """Index by id; a duplicate keeps the first and is reported by validation, not here."""
    out: dict[str, E] = {}
    for element in elements:
        out.setdefault(element.id, element)
    return MappingProxyType(out)


@dataclass(frozen=True)
class Network:
    """An immutable grid: tables of elements keyed by id.

    Build one with :meth:`from_elements`; derive changed copies with :meth:`with_elements`.
    ``duplicates`` keeps ids that appeared twice in a table so that validation can name them.
    """

    name: str = "network"
    buses: Mapping[str, Bus] = field(default_factory=dict)
    lines: Mapping[str, Line] = field(default_factory=dict)
    transformers: Mapping[str, Transformer] = field(default_factory=dict)
    switches: Mapping[str, Switch] = field(default_factory=dict)
    external_grids: Mapping[str, ExternalGrid] = field(default_factory=dict)
    loads: Mapping[str, Load] = field(default_factory=dict)
    generators: Mapping[str, Generator] = field(default_factory=dict)
    batteries: Mapping[str, Battery] = field(default_factory=dict)
    ev_chargers: Mapping[str, EvCharger] = field(default_factory=dict)
    sites: Mapping[str, Site] = field(default_factory=dict)
    duplicates: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_elements(cls, elements: Iterable[Element], *, name: str = "network") -> Network:
        """Sort elements into their tables, in the order given."""
        tables: dict[str, list[Element]] = {table: [] for table in TABLES}
        for element in elements:
            tables[element.table].append(element)
        duplicates: list[tuple[str, str]] = []
        for table, items in tables.items():
            seen: set[str] = set()
            for item in items:
                if item.id in seen:
                    duplicates.append((table, item.id))
                seen.add(item.id)
        kwargs: dict[str, Any] = {table: _index(items) for table, items in tables.items()}
        return cls(name=name, duplicates=tuple(duplicates), **kwargs)

    def table(self, table: str) -> Mapping[str, Element]:
        """A table by its name (``"buses"``, ``"lines"``, …)."""
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; known: {', '.join(TABLES)}")
        mapping: Mapping[str, Element] = getattr(self, table)
        return mapping

    def elements(self) -> Iterator[Element]:
        """Every element, table by table."""
        for table in TABLES:
            yield from self.table(table).values()

    def with_elements(self, elements: Iterable[Element], *, name: str | None = None) -> Network:
        """A copy with elements added, or replaced where the id already exists in the table."""
        merged: dict[str, dict[str, Element]] = {table: dict(self.table(table)) for table in TABLES}
        for element in elements:
            merged[element.table][element.id] = element
        return Network.from_elements((e for table in merged.values() for e in table.values()), name=name or self.name)

    def without(self, table: str, ids: Iterable[str]) -> Network:
        """A copy with the given elements of one table removed."""
        drop = set(ids)
        kept = (e for e in self.elements() if not (e.table == table and e.id in drop))
        return Network.from_elements(kept, name=self.name)

    def summary(self) -> dict[str, int]:
        """Element counts per table (for CLI and reports)."""
        return {table: len(self.table(table)) for table in TABLES}
