"""Find a scenario by path or by built-in name (``demo``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUILTIN = ("demo",)


def scenario_path(name_or_path: str) -> Path:
    """The YAML file for a built-in name, else the argument as a path."""
    if name_or_path in BUILTIN:
        return Path(str(resources.files("gridmesh.scenarios").joinpath(f"{name_or_path}.yaml")))
    return Path(name_or_path)
