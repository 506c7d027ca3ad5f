"""Where Audrey talks to people: one stderr console, progress bars, one-time warnings."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

err = Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    # soft_wrap: one line however long, so a path is never broken where the terminal wraps
    err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)  # a path's "[...]" is not markup


_said: set[str] = set()


def warn_once(message: str) -> None:
    """warn(), unless this very message was already given in this process (a file read twice)."""
    if message not in _said:
        _said.add(message)
        warn(message)


def quiet() -> bool:
    """No progress bars in CI logs or when stderr is not a terminal, unless AUDREY_PROGRESS=1."""
    if os.environ.get("AUDREY_PROGRESS") == "1":
        return False
    return not sys.stderr.isatty()


@contextmanager
def progress(transient: bool = True):
    """A rich progress bar (counts, rate, ETA) that disappears when the work is done."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=err,
        transient=transient,
        disable=quiet(),
    )
    with bar:
        yield bar
