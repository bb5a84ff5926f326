"""The exception tree of gridmesh.

::

    GridmeshError
    ├── ScenarioError        a scenario or network is invalid (carries every issue found)
    ├── ProfileError         a time series is missing, too short or malformed
    └── NotConverged         a power flow did not converge (carries the failed time steps)

Every error says what went wrong and, where it can, what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class GridmeshError(Exception):
    """Root of every error raised on purpose by gridmesh."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a scenario: which element, which field, what is wrong and how to fix it."""

    element: str
    field: str
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.element}: {self.field}: {self.problem}"
        return f"{text} — {self.fix}" if self.fix else text


class ScenarioError(GridmeshError):
    """A scenario failed validation; ``issues`` lists every problem found, not just the first."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"scenario has {len(self.issues)} problem(s):\n{lines}")


class ProfileError(GridmeshError):
    """A profile (time series) cannot serve the requested study."""


class NotConverged(GridmeshError):
    """A power flow failed; ``steps`` are the failed batch indices and ``reasons`` their messages."""

    def __init__(self, steps: Sequence[int], reasons: Sequence[str]) -> None:
        self.steps = tuple(steps)
        self.reasons = tuple(reasons)
        first = self.reasons[0] if self.reasons else "unknown reason"
        super().__init__(f"power flow failed in {len(self.steps)} time step(s), first: {first}")
