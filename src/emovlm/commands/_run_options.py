"""Options of the commands that run, read a run folder or score answers, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from emovlm.commands._recognizer_options import with_options
from emovlm.errors import InputError


def in_panel(panel: str, help: str, *declarations: str) -> Any:
    """An option shown in the help panel `panel`."""
    return typer.Option(*declarations, help=help, rich_help_panel=panel)


def _resamples(value: int) -> int:
    """Refuse a negative number of bootstrap resamples."""
    if value < 0:
        raise InputError(f"--bootstrap must be 0 (no intervals) or more, not {value}")
    return value


RunFolder = Annotated[Path, typer.Argument(help="run folder written by `emovlm eval --run-dir`")]
ConfigKey = Annotated[
    str | None,
    typer.Option(help="configuration key (or a unique prefix) when the folder holds several"),
]
Bootstrap = Annotated[
    int, typer.Option(help="bootstrap resamples for 95% intervals (0: none)", callback=_resamples)
]
BootstrapSeed = Annotated[int, typer.Option(help="seed of the bootstrap")]

RUN_PANEL = "Run"
Limit = Annotated[
    int | None, typer.Option(help="evaluate only the first N samples", rich_help_panel=RUN_PANEL)
]
BatchSize = Annotated[
    int | None,
    typer.Option(
        help="samples per recognizer call (default: the recognizer's own, else 8)",
        rich_help_panel=RUN_PANEL,
    ),
]
Progress = Annotated[bool, typer.Option(help="show progress bars", rich_help_panel=RUN_PANEL)]

ANSWER_COLUMNS: dict[str, tuple[type, str, str]] = {
    "gt_column": (str, "column holding the gold label(s) (default: gt)", "Predictions file"),
    "pred_column": (
        str,
        "column holding the answer: free text or a ranked list 'a, b, c' (default: pred)",
        "Predictions file",
    ),
    "id_column": (
        str,
        "column of sample ids (default: id, sample_id or name if present, else row number)",
        "Predictions file",
    ),
}
"""The columns of a predictions file (CSV/JSONL) that `eval.scoring.score_file` reads."""

with_answer_columns = with_options(ANSWER_COLUMNS, "columns")
"""The predictions file's column options; the command receives the given ones as `columns`."""
