"""Progress shown while a command runs, drawn with rich. The code doing the work knows none of
this: it reports through plain callbacks (`step(text)`, `step(text, share)`, `(done, total)`),
and these displays turn the calls into a spinner or bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

if TYPE_CHECKING:
    from leadscore.learn.inputs import Step


@contextmanager
def spinner(console: Console) -> Iterator[Callable[[str], None]]:
    """Steps of a long run, shown with a spinner on a terminal (nothing otherwise)."""
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                        console=console, transient=True, disable=not console.is_terminal)
    with progress:
        task = progress.add_task("starting", total=None)

        def step(text: str) -> None:
            progress.update(task, description=text)

        yield step


@contextmanager
def progress_bar(console: Console) -> Iterator[Step]:
    """A bar of the whole run on a terminal (nothing otherwise): the step now running, the
    share done, the time so far. Steps report their share (`Step`); the bar never goes back."""
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        TaskProgressColumn(), TimeElapsedColumn(), console=console,
                        transient=True, disable=not console.is_terminal)
    with progress:
        task = progress.add_task("starting", total=100)

        def step(text: str, done: float | None = None, /) -> None:
            current = progress.tasks[0].completed
            share = current if done is None else max(current, 100 * min(1.0, done))
            progress.update(task, description=text, completed=share, refresh=True)

        yield step
        progress.update(task, completed=100)


class Counter:
    """One bar counting items done of a total (unknown until the work says)."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress = progress
        self.task = task

    def __call__(self, done: int, total: int | None = None) -> None:
        self.progress.update(self.task, completed=done, total=total)

    def finish(self) -> None:
        """Show the bar full at what was counted (at least 1)."""
        done = self.progress.tasks[self.task].completed or 1
        self.progress.update(self.task, total=done, completed=done)


@contextmanager
def counters(console: Console) -> Iterator[Callable[[str], Counter]]:
    """Bars that stay on screen, one per item (a file imported): `start(name)` adds one."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:

        def start(description: str) -> Counter:
            return Counter(progress, progress.add_task(description, total=None))

        yield start


@contextmanager
def partitions(console: Console) -> Iterator[Callable[[str, str, int, int | None], None]]:
    """A bar per model across the partitions it reads (`score --state`), on a terminal only:
    `step(model, partition, done, total)`, a model's first call adding its bar."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True,
                        disable=not console.is_terminal)
    tasks: dict[str, TaskID] = {}
    with progress:

        def step(model: str, partition: str, done: int, total: int | None) -> None:
            if model not in tasks:
                tasks[model] = progress.add_task(f"{model}: {partition}", total=total)
            progress.update(tasks[model], description=f"{model}: {partition}", completed=done,
                            total=total)

        yield step
