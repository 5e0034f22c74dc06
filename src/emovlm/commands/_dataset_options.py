"""Dataset options shared by the commands that open a dataset, declared once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from emovlm.commands._recognizer_options import with_options
from emovlm.errors import InputError

DATA_PANEL = "Dataset"

DATASET_OPTIONS: dict[str, tuple[Any, str, str]] = {
    "dataset": (str, "dfew | ferv39k | mafw | emotic | folder | manifest", DATA_PANEL),
    "root": (Path, "dataset root folder (or manifest file's folder)", DATA_PANEL),
    "fold": (int, "fold 1-5 for DFEW and MAFW (default: 1)", DATA_PANEL),
    "label_set": (str, "label set for folder/manifest datasets", DATA_PANEL),
    "dataset_option": (
        list[str],
        "adapter option KEY=VALUE (repeatable), e.g. manifest=clips.csv",
        DATA_PANEL,
    ),
}
"""Each dataset flag: CLI type, help, panel."""

with_dataset_options = with_options(DATASET_OPTIONS, "dataset_flags")
"""The dataset flags as options; the command receives the given ones as `dataset_flags` (flags it
declares itself, e.g. a required --root, are left to it)."""


def parse_pairs(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """KEY=VALUE strings → dict, values read as YAML scalars (numbers, booleans, strings)."""
    parsed: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"{flag} expects KEY=VALUE, got {pair!r}")
        parsed[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return parsed


def adapter_options(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The adapter's options from the given flags: --dataset-option pairs and --label-set."""
    options = parse_pairs(flags.get("dataset_option"), "--dataset-option")
    if flags.get("label_set"):
        options["label_set"] = flags["label_set"]
    return options


def open_split(flags: Mapping[str, Any], split: str) -> Any:
    """One split of the dataset the given flags name (fold 1 unless given)."""
    from emovlm.data.base import open_dataset

    if not flags.get("dataset") or flags.get("root") is None:
        raise InputError("give --dataset and --root")
    return open_dataset(
        flags["dataset"],
        flags["root"],
        split=split,
        fold=flags.get("fold") or 1,
        **adapter_options(flags),
    )
