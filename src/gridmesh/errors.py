"""The exception tree of gridmesh.

::

    GridmeshError
    ├── ScenarioError        a scenario or network is invalid (carries every issue found)
    ├── ProfileError         a time series is missing, too short or malformed
    ├── NotConverged         a power flow did not converge (carries the failed time steps)
    └── CentreError          the live centre declines a request (carries ``fix``; the API maps ``status``)
        ├── NotFound         unknown device, alarm or quantity (404)
        ├── CommandRefused   a command would violate a limit or cannot be sent (409)
        └── NotReady         nothing to show yet, e.g. before the first state estimate (503)

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


class CentreError(GridmeshError):
    """An error the live centre reports to a caller; ``fix`` says what to do next."""

    status = 400

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


class NotFound(CentreError):
    """An unknown device, alarm or quantity."""

    status = 404


class CommandRefused(CentreError):
    """The centre would not send a command (unknown or uncontrollable device, beyond its limits...)."""

    status = 409


class NotReady(CentreError):
    """Nothing to show yet, e.g. no state estimated before the first telemetry cycle."""

    status = 503
