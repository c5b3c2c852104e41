"""Progress bars and messages for long work (rich), shared by every package."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Task:
    """A handle on one bar: `advance(n)`, or `update(completed=...)`."""

    def __init__(self, progress: Progress | None, task_id: int | None):
        self._progress, self._id = progress, task_id

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._id, n)

    def update(self, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._id, **fields)


class Reporter:
    """Console output and progress bars; `quiet=True` keeps both off (tests, pipes)."""

    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.quiet = quiet
        # soft_wrap: a message is one line whatever the terminal's width, so logs keep
        # full paths greppable (tables still fit the width).
        self.console = console or Console(stderr=True, soft_wrap=True)
        self._progress: Progress | None = None

    @classmethod
    def for_cli(cls, quiet: bool = False) -> Reporter:
        return cls(quiet=quiet)

    def note(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {message}")

    def _bars(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
                disable=self.quiet or not self.console.is_terminal and "pytest" in sys.modules,
            )
        return self._progress

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Task]:
        """A progress bar for the duration of the block."""
        if self.quiet:
            yield Task(None, None)
            return
        bars = self._bars()
        started_here = not bars.live.is_started
        if started_here:
            bars.start()
        task_id = bars.add_task(description, total=total)
        try:
            yield Task(bars, task_id)
            if total is not None:
                bars.update(task_id, completed=total)
        finally:
            if started_here:
                bars.stop()
                self._progress = None
