"""Options of the commands that read a run folder or score answers, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emovlm.errors import InputError


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
