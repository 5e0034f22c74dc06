"""The evaluation progress bar: samples done, samples per second, ok/other/failed counts and ETA."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from emovlm.types import Status


class _RateColumn(ProgressColumn):
    """Samples per second over the recent past."""

    def render(self, task: Task) -> Text:
        """The task's current speed, or '-' before there is one."""
        speed = task.finished_speed or task.speed
        return Text("- samples/s" if speed is None else f"{speed:.2f} samples/s")


class OptionalBar:
    """A context that shows a rich Progress while open, or does nothing when there is none."""

    def __init__(self, enabled: bool, *columns: ProgressColumn) -> None:
        """Prepare a bar (none unless `enabled`) with `columns` between the counts and the times."""
        self._progress = (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                *columns,
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            if enabled
            else None
        )

    def __enter__(self) -> Self:
        """Show the bar."""
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the bar, leaving its last state on screen."""
        if self._progress is not None:
            self._progress.stop()


class EvalProgress(OptionalBar):
    """A rich progress bar for one evaluation, or nothing at all when disabled."""

    def __init__(
        self, description: str, total: int | None, already_done: int, enabled: bool
    ) -> None:
        """Prepare a bar over `total` samples (None if unknown), `already_done` of them before."""
        self._counts: Counter[Status] = Counter()
        super().__init__(
            enabled,
            _RateColumn(),
            TextColumn(
                "[green]{task.fields[ok]} ok[/] {task.fields[other]} other "
                "[red]{task.fields[failed]} failed[/]"
            ),
        )
        if self._progress is not None:
            self._task = self._progress.add_task(
                description, total=total, completed=already_done, **self._fields()
            )

    def advance(self, statuses: Sequence[Status]) -> None:
        """Count a finished batch from the statuses of its predictions."""
        self._counts.update(Status(s) for s in statuses)
        if self._progress is not None:
            self._progress.update(self._task, advance=len(statuses), **self._fields())

    def _fields(self) -> dict[str, int]:
        """Counts shown on the bar: ok, out-of-set or unparsed ("other"), failed."""
        other = self._counts[Status.OUT_OF_SET] + self._counts[Status.UNPARSED]
        return {
            "ok": self._counts[Status.OK],
            "other": other,
            "failed": self._counts[Status.FAILED],
        }
