"""Progress of long CLI work, drawn by rich on stderr: only on a terminal, never with --json.

What a command prints on stdout (a result, CSV, JSON) stays exactly as it is: the progress is on
stderr, drawn only when stderr is a terminal (and stdout too, for commands that print as they go),
and erased or finished before the result. A test passes a Console of its own (force_terminal).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

# rich is imported when something is drawn, not above: the daemon (`lifeline run`) imports every
# command's module, and rich with its dependencies costs it ~3 MiB resident for bars it never draws.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


def terminal(json_output: bool = False, *, stdout_too: bool = False) -> Console | None:
    """The console to draw progress on: stderr when it is a terminal (and stdout, if asked); None otherwise."""
    if json_output or not sys.stderr.isatty() or (stdout_too and not sys.stdout.isatty()):
        return None
    from rich.console import Console

    return Console(stderr=True)


class Meter:
    """A progress bar (done of total) or, with no total, a spinner; does nothing without a console."""

    def __init__(self, console: Console | None, description: str, *, transient: bool = False) -> None:
        self.description = description
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if console is not None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
            columns += [MofNCompleteColumn(), TimeElapsedColumn()]
            self._progress = Progress(*columns, console=console, transient=transient, redirect_stderr=False)

    @property
    def shown(self) -> bool:
        """Whether anything is drawn."""
        return self._progress is not None

    def _started(self, total: int | None = None) -> tuple[Progress, TaskID] | None:
        if self._progress is None:
            return None
        if self._task is None:
            self._task = self._progress.add_task(self.description, total=total)
            self._progress.start()
        return self._progress, self._task

    def __call__(self, done: int, total: int | None) -> None:
        """Done so far of total (None: not known yet)."""
        started = self._started(total)
        if started is not None:
            progress, task = started
            progress.update(task, completed=done, total=total)

    def describe(self, text: str) -> None:
        """A new description (the step now under way)."""
        started = self._started()
        if started is not None:
            progress, task = started
            progress.update(task, description=text)

    def close(self) -> None:
        """Stop drawing (the last state stays unless transient)."""
        if self._progress is not None and self._task is not None:
            self._progress.stop()
            self._task = None
