"""Dataset options shared by the commands that open a dataset, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from emovlm.errors import InputError

DATA_PANEL = "Dataset"

DatasetName = Annotated[
    str | None,
    typer.Option(
        help="dfew | ferv39k | mafw | emotic | folder | manifest", rich_help_panel=DATA_PANEL
    ),
]
DatasetRoot = Annotated[
    Path | None,
    typer.Option(
        help="dataset root folder (or manifest file's folder)", rich_help_panel=DATA_PANEL
    ),
]
Fold = Annotated[
    int | None,
    typer.Option(help="fold 1-5 for DFEW and MAFW (default: 1)", rich_help_panel=DATA_PANEL),
]
LabelSet = Annotated[
    str | None,
    typer.Option(help="label set for folder/manifest datasets", rich_help_panel=DATA_PANEL),
]
DatasetOptionPairs = Annotated[
    list[str] | None,
    typer.Option(
        help="adapter option KEY=VALUE (repeatable), e.g. manifest=clips.csv",
        rich_help_panel=DATA_PANEL,
    ),
]


def parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """KEY=VALUE strings → dict, values read as YAML scalars (numbers, booleans, strings)."""
    parsed: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"{flag} expects KEY=VALUE, got {pair!r}")
        parsed[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return parsed
