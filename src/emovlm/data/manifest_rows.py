"""Reading manifest rows (CSV, TSV or JSON Lines) and the fields inside them, with line numbers."""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emovlm.errors import InputError

Row = dict[str, Any]
_LABEL_SEPARATORS = re.compile(r"[;|]")
_NUMBER_SEPARATORS = re.compile(r"[\s,;]+")
FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None}


def read_rows(path: Path) -> Iterator[tuple[int, Row]]:
    """(line number, row with lower-case keys) for each non-empty row of a manifest file."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"{path}: unknown manifest format {suffix or '(no suffix)'}; use one of "
            f"{', '.join(FORMATS)}"
        )
    try:
        delimiter = FORMATS[suffix]
        yield from (_json_rows(path) if delimiter is None else _csv_rows(path, delimiter))
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None


def columns_of(path: Path) -> list[str] | None:
    """The header of a CSV/TSV manifest in lower case, or None for JSON Lines (keys vary by row)."""
    delimiter = FORMATS.get(path.suffix.lower())
    if delimiter is None:
        return None
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle, delimiter=delimiter), [])
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None
    return [name.strip().lower() for name in header]


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> InputError:
    return InputError(
        f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
    )


def _csv_rows(path: Path, delimiter: str) -> Iterator[tuple[int, Row]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        for raw in reader:
            if None in raw:
                raise InputError(
                    f"{path} line {reader.line_num}: more fields than the header has; "
                    "quote fields that contain the delimiter"
                )
            row = {key.strip().lower(): (value or "").strip() for key, value in raw.items()}
            if any(row.values()):
                yield reader.line_num, row


def _json_rows(path: Path) -> Iterator[tuple[int, Row]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{path} line {number}: not valid JSON ({exc.msg}); write one "
                    'object per line, e.g. {"path": "a.mp4", "label": "happy"}'
                ) from None
            if not isinstance(value, dict):
                raise InputError(
                    f"{path} line {number}: expected a JSON object, got {type(value).__name__}"
                )
            yield number, {str(key).strip().lower(): item for key, item in value.items()}


def text_of(value: Any) -> str:
    """A cell as stripped text ('' for missing values)."""
    return "" if value is None else str(value).strip()


def split_labels(value: Any) -> list[str]:
    """Label names from a list or from text separated by ';' or '|'."""
    items = value if isinstance(value, list) else _LABEL_SEPARATORS.split(text_of(value))
    return [text_of(item) for item in items if text_of(item)]


def numbers(value: Any, count: int) -> tuple[float, ...] | None:
    """Exactly `count` finite numbers from a list or text ('1,2,3,4', '1 2 3 4'); None if empty.

    Raises ValueError with the reason when the value is not `count` finite numbers.
    """
    if isinstance(value, list):
        items = value
    else:
        text = text_of(value).strip("[]()")
        if not text:
            return None
        items = [part for part in _NUMBER_SEPARATORS.split(text) if part]
    if len(items) != count:
        raise ValueError(f"expected {count} numbers, got {len(items)}")
    result = tuple(float(item) for item in items)
    if not all(math.isfinite(x) for x in result):
        raise ValueError("numbers must be finite")
    return result
