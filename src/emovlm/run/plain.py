"""Conversion of configuration and extra values to plain JSON/YAML values, with clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from pathlib import PurePath
from typing import Any

import numpy as np

from emovlm.errors import InputError


def to_plain(value: Any, where: str) -> Any:
    """`value` as None, bool, int, float, str, list or dict (tuples become lists, paths strings).

    `where` names the value in the error raised for anything that has no plain form.
    """
    if isinstance(value, Enum):
        return to_plain(value.value, where)
    if isinstance(value, np.generic | np.ndarray):
        return to_plain(value.tolist(), where)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str | PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise InputError(
        f"{where} has type {type(value).__name__}, which a run cannot store; "
        "use plain values (str, numbers, lists, dicts)"
    )
