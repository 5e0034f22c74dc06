"""The training progress bar: optimiser steps done, current epoch and loss, elapsed time and ETA."""

from __future__ import annotations

from rich.progress import TextColumn

from emovlm.run.progress import OptionalBar


class TrainingProgress(OptionalBar):
    """A rich progress bar over training steps, or nothing at all when disabled."""

    def __init__(self, description: str, total_steps: int, done_steps: int, enabled: bool) -> None:
        """Prepare a bar over `total_steps` steps, `done_steps` of them done before (resumed)."""
        super().__init__(enabled, TextColumn("epoch {task.fields[epoch]} loss {task.fields[loss]}"))
        if self._progress is not None:
            self._task = self._progress.add_task(
                description, total=total_steps, completed=done_steps, epoch="-", loss="-"
            )

    def step(self, epoch: int, loss: float) -> None:
        """Count one optimiser step of `epoch` (1-based) with its loss."""
        if self._progress is not None:
            self._progress.update(self._task, advance=1, epoch=epoch, loss=f"{loss:.4f}")
