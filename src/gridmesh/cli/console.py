"""Shared console output: rich for people, plain JSON when asked, problems listed with fixes."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gridmesh.errors import Issue

console = Console()
errors = Console(stderr=True)


def print_issues(issues: Sequence[Issue], *, source: str) -> None:
    """Every problem as a table (element, field, problem, fix) on stderr."""
    table = Table(title=f"{len(issues)} problem(s) in {source}", title_justify="left", show_lines=False)
    for column in ("element", "field", "problem", "how to fix"):
        table.add_column(column, overflow="fold")
    for issue in issues:
        table.add_row(*(escape(text) for text in (issue.element, issue.field, issue.problem, issue.fix)))
    errors.print(table)


def wait_until_stopped() -> None:
    """Block until Ctrl-C or SIGTERM: how a long-running command (field, edge agent) waits for its end."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
