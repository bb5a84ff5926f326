"""Scenario files (YAML): a base network plus additions, changes, profiles and a time range.

Schema (every key optional except what a study needs; see ``docs/scenario.md``)::

    name: my-grid
    description: free text
    base: {simbench: 1-MV-rural--0-sw}        # or {pandapower: net.json}; paths are relative to this file
    elements: {buses: [...], lines: [...], ...}   # added, or replacing a base element with the same id
    modify: {switches: {"sw-1": {remote: true}}}  # change fields of existing elements
    remove: {loads: [load-3]}
    profiles:
      simbench: 1-MV-rural--0-sw              # SimBench's yearly profiles
      file: profiles.parquet                  # and/or a table: DatetimeIndex, one column per profile
      series: {start: 2016-01-01, resolution_min: 15, values: {flat: [1.0, 1.0]}}
    time: {start: 2016-01-01, days: 7}

Reading collects every problem before it gives up, so a user sees them all at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandapower as pp
import pandas as pd
import yaml
from pydantic import ValidationError

from gridmesh.errors import Issue, ProfileError, ScenarioError
from gridmesh.model.elements import TABLES, Element
from gridmesh.model.io.pandapower import from_pandapower
from gridmesh.model.io.simbench import check_code, profiles_of, simbench_net
from gridmesh.model.network import Network
from gridmesh.model.profiles import Profiles, check_columns
from gridmesh.model.scenario import Scenario, TimeRange
from gridmesh.model.validation import validate_network, validate_scenario

TOP_LEVEL = ("name", "description", "base", "elements", "modify", "remove", "profiles", "time")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _fix(error: Mapping[str, Any], cls: type[Element]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "add this field"
    if kind == "extra_forbidden":
        return f"remove it or fix its spelling; fields of {cls.table}: {', '.join(cls.model_fields)}"
    for key, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
        if key in ctx:
            return f"use a value {sign} {ctx[key]}"
    if kind == "enum":
        return f"use one of {ctx.get('expected', '')}"
    return ""


def parse_element(cls: type[Element], data: Any, where: str) -> tuple[Element | None, list[Issue]]:
    """One element from a mapping, or the issues that stop it (naming element and field)."""
    if not isinstance(data, Mapping):
        return None, [Issue(where, "-", f"expected a mapping of fields, got {type(data).__name__}")]
    owner = f"{cls.table}[{data.get('id', where)}]"
    try:
        return cls.model_validate(dict(data)), []
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "-"
            problem = err["msg"].removeprefix("Value error, ")
            issues.append(
                Issue(
                    owner, field, f"{problem} (got {err.get('input')!r})" if field != "-" else problem, _fix(err, cls)
                )
            )
        return None, issues


def _base(spec: Any, folder: Path) -> tuple[Network | None, pp.pandapowerNet | None, list[Issue]]:
    if spec is None:
        return None, None, []
    if not isinstance(spec, Mapping) or len(spec) != 1 or next(iter(spec)) not in ("simbench", "pandapower"):
        return None, None, [Issue("base", "-", "expected {simbench: CODE} or {pandapower: FILE.json}")]
    ((kind, value),) = spec.items()
    if kind == "simbench":
        issues = check_code(str(value))
        if issues:
            return None, None, issues
        net = simbench_net(str(value))
        return from_pandapower(net, name=str(value)), net, []
    path = folder / str(value)
    if not path.exists():
        return None, None, [Issue("base", "pandapower", f"file {str(path)!r} not found", "check the path")]
    net = pp.from_json(str(path))
    return from_pandapower(net, name=path.stem), net, []


def _placeholder(cls: type[Element], data: Any) -> Element | None:
    """An unvalidated stand-in for an element whose fields failed, so that cross-element checks still
    run (a bad rating must not hide a dangling bus elsewhere)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
        return None
    known = {k: v for k, v in data.items() if k in cls.model_fields}
    return cls.model_construct(**known)


def _elements(spec: Any, where: str = "elements") -> tuple[list[Element], list[Issue]]:
    """Parsed elements (with placeholders for invalid ones, when any issue is returned) and issues."""
    if spec is None:
        return [], []
    if not isinstance(spec, Mapping):
        return [], [Issue(where, "-", "expected a mapping of table → list of elements")]
    out: list[Element] = []
    issues: list[Issue] = []
    for table, items in spec.items():
        cls = TABLES.get(table)
        if cls is None:
            issues.append(Issue(f"{where}.{table}", "-", "unknown table", f"use one of {', '.join(TABLES)}"))
            continue
        for i, item in enumerate(items or []):
            element, problems = parse_element(cls, item, f"{table}[{i}]")
            issues += problems
            element = element or _placeholder(cls, item)
            if element is not None:
                out.append(element)
    return out, issues


def _modify(network: Network, spec: Any) -> tuple[list[Element], list[Issue]]:
    out: list[Element] = []
    issues: list[Issue] = []
    for table, changes in (spec or {}).items():
        if table not in TABLES:
            issues.append(Issue(f"modify.{table}", "-", "unknown table", f"use one of {', '.join(TABLES)}"))
            continue
        existing = network.table(table)
        for id_, fields in (changes or {}).items():
            if id_ not in existing:
                issues.append(
                    Issue(
                        f"{table}[{id_}]",
                        "-",
                        "cannot modify an element that does not exist",
                        "check the id, or add it under elements",
                    )
                )
                continue
            merged = existing[id_].model_dump() | dict(fields or {})
            element, problems = parse_element(TABLES[table], merged, f"{table}[{id_}]")
            issues += problems
            if element is not None:
                out.append(element)
    return out, issues


def _profiles(spec: Any, folder: Path, base_net: pp.pandapowerNet | None, base: Any) -> tuple[Profiles, list[Issue]]:
    profiles = Profiles.empty()
    issues: list[Issue] = []
    if not spec:
        return profiles, issues
    code = spec.get("simbench")
    try:
        if code:
            problems = check_code(str(code), where="profiles")
            if problems:
                return profiles, problems
            same = base_net is not None and isinstance(base, Mapping) and base.get("simbench") == code
            profiles = profiles.merged(profiles_of(base_net if same else simbench_net(str(code))))
        if spec.get("file"):
            path = folder / str(spec["file"])
            if not path.exists():
                issues.append(Issue("profiles", "file", f"file {str(path)!r} not found", "check the path"))
            else:
                frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, index_col=0)
                profiles = profiles.merged(Profiles.from_frame(frame))
        if spec.get("series"):
            series = spec["series"]
            values = series.get("values") or {}
            column_problems = check_columns(values)
            issues += [
                Issue(f"profiles[{name}]", "values", why, "give every profile the same number of finite values")
                for name, why in column_problems.items()
            ]
            if not column_problems and values:
                start = _datetime(series.get("start", "2016-01-01"))
                table = np.array([values[n] for n in values], dtype=np.float32).T
                profiles = profiles.merged(
                    Profiles(start, timedelta(minutes=float(series.get("resolution_min", 15))), tuple(values), table)
                )
    except ProfileError as exc:
        issues.append(Issue("profiles", "-", str(exc)))
    return profiles, issues


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value))


def parse_scenario(
    data: Any, *, folder: Path = Path("."), name: str = "scenario"
) -> tuple[Scenario | None, list[Issue]]:
    """A scenario from parsed YAML, plus every issue found (the scenario is None when any stops it)."""
    if not isinstance(data, Mapping):
        return None, [Issue("file", "-", "a scenario file must be a YAML mapping", "see docs/scenario.md")]
    issues = [
        Issue(str(k), "-", "unknown top-level key", f"use one of {', '.join(TOP_LEVEL)}")
        for k in data
        if k not in TOP_LEVEL
    ]
    network, base_net, problems = _base(data.get("base"), folder)
    issues += problems
    network = network or Network(name=str(data.get("name", name)))
    added, problems = _elements(data.get("elements"))
    issues += problems
    network = network.with_elements(added, name=str(data.get("name", network.name)))
    changed, problems = _modify(network, data.get("modify"))
    issues += problems
    network = network.with_elements(changed)
    for table, ids in (data.get("remove") or {}).items():
        missing = [i for i in ids if i not in network.table(table)] if table in TABLES else list(ids)
        issues += [Issue(f"{table}[{i}]", "-", "cannot remove an element that does not exist") for i in missing]
        if table in TABLES:
            network = network.without(table, ids)
    profiles, problems = _profiles(data.get("profiles"), folder, base_net, data.get("base"))
    issues += problems
    time = data.get("time") or {}
    try:
        start = _datetime(time["start"]) if "start" in time else profiles.start
        days = float(time.get("days", 7))
        if not math.isfinite(days) or days <= 0:
            raise ValueError("days must be positive")
    except (ValueError, TypeError) as exc:
        issues.append(Issue("time", "-", str(exc), "write time: {start: 2016-01-01, days: 7}"))
        start, days = profiles.start, 7.0
    if issues:
        return None, issues + _network_issues(network, issues)
    scenario = Scenario(
        name=network.name,
        network=network,
        profiles=profiles,
        time=TimeRange(start, days),
        description=str(data.get("description", "")),
    )
    issues = validate_scenario(scenario)
    return (None if issues else scenario), issues


def _network_issues(network: Network, found: list[Issue]) -> list[Issue]:
    """Cross-element issues of a network that holds placeholders, when its shape allows the checks."""
    try:
        extra = validate_network(network)
    except (AttributeError, TypeError, KeyError, ValueError):
        return []
    flagged = {issue.element for issue in found}  # an element with field errors is reported once, by them
    return [issue for issue in extra if issue not in found and issue.element not in flagged]


def read_scenario_issues(path: Path) -> tuple[Scenario | None, list[Issue]]:
    """Read and validate a scenario file; returns every issue instead of raising."""
    if not path.exists():
        return None, [Issue(str(path), "-", "file not found", "check the path, or use `demo`")]
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as exc:
        return None, [Issue(str(path), "-", f"not valid YAML: {exc}")]
    return parse_scenario(data, folder=path.parent, name=path.stem)


def read_scenario(path: Path) -> Scenario:
    """Read a scenario file or raise :class:`ScenarioError` with every problem."""
    scenario, issues = read_scenario_issues(path)
    if scenario is None:
        raise ScenarioError(issues)
    return scenario


def _dump_element(element: Element) -> dict[str, Any]:
    return element.model_dump(mode="json", exclude_defaults=True) | {"id": element.id}


def scenario_document(scenario: Scenario, *, profiles_file: str | None) -> dict[str, Any]:
    """The YAML document of a scenario with inline elements."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in TABLES:
        items = [_dump_element(e) for e in scenario.network.table(table).values()]
        if items:
            tables[table] = items
    doc: dict[str, Any] = {"name": scenario.name}
    if scenario.description:
        doc["description"] = scenario.description
    doc["time"] = {"start": scenario.time.start.isoformat(sep=" "), "days": scenario.time.days}
    if profiles_file:
        doc["profiles"] = {"file": profiles_file}
    doc["elements"] = tables
    return doc


def write_scenario(scenario: Scenario, path: Path) -> list[Path]:
    """Write ``path`` (YAML, one element per line) and its profiles beside it as Parquet; returns files."""
    written = [path]
    profiles_file = None
    if scenario.profiles.names:
        profiles_path = path.with_suffix(".profiles.parquet")
        scenario.profiles.to_frame().to_parquet(profiles_path, compression="zstd")
        profiles_file = profiles_path.name
        written.append(profiles_path)
    doc = scenario_document(scenario, profiles_file=profiles_file)
    elements = doc.pop("elements")
    head = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    lines = [head.rstrip("\n"), "elements:"]
    for table, items in elements.items():
        lines.append(f"  {table}:")
        lines += [f"  - {_flow(item)}" for item in items]
    path.write_text("\n".join(lines) + "\n")
    return written


def _flow(item: Mapping[str, Any]) -> str:
    return yaml.dump(
        dict(item), Dumper=_Dumper, default_flow_style=True, width=1_000_000, sort_keys=False, allow_unicode=True
    ).strip()


def element_tables(elements: Iterable[Element]) -> dict[str, list[dict[str, Any]]]:
    """Elements grouped by table as plain dicts (for JSON/YAML output)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for element in elements:
        out.setdefault(element.table, []).append(_dump_element(element))
    return out
