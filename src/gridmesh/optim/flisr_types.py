"""Values shared by fault location and restoration planning (FLISR)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gridmesh.errors import CommandRefused


class PlanRefused(CommandRefused):
    """FLISR will not locate or plan (unknown element, a switch it may not operate, a stale plan …).

    Nothing has been executed when this is raised; ``fix`` says what to do next.
    """


class Action(StrEnum):
    OPEN = "open"
    CLOSE = "close"


class Purpose(StrEnum):
    """Why a switch is operated: cut the fault off, bring customers back, or drop load to fit a limit."""

    ISOLATE = "isolate"
    RESTORE = "restore"
    SHED = "shed"


@dataclass(frozen=True)
class Step:
    switch: str
    action: Action
    purpose: Purpose

    def __str__(self) -> str:
        return f"{self.action} {self.switch} ({self.purpose})"


@dataclass(frozen=True)
class Location:
    """Where the fault(s) are, as sections, and how sure the indicators make us.

    ``faulted``: sections treated as faulted (several when the indicators leave a choice: all of them are
    isolated). ``conflicting``: indicators whose reading contradicts the chosen explanation (suspect
    wrong). ``missing``: switches without a reading that would have decided between candidates.
    ``confidence``: share of readings consistent with the explanation, divided by the number of sections
    left to choose from (1.0: every reading agrees and one section is pinned down).
    """

    faulted: frozenset[int]
    trips: tuple[str, ...]
    confidence: float = 1.0
    conflicting: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
