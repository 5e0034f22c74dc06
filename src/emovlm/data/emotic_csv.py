"""Reading EMOTIC persons from the per-split CSV export (the widely used `mat2py.py` format).

Columns: Index, Folder, Filename, Image Size, BBox, Categorical_Labels, Continuous_Labels, Gender,
Age, with lists written as Python literals ("[12, 30, 200, 310]", "['Engagement', 'Peace']").
"""

from __future__ import annotations

import ast
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emovlm.data.emotic_mat import EmoticPerson
from emovlm.errors import InputError

REQUIRED_COLUMNS = ("Folder", "Filename", "BBox", "Categorical_Labels")


def read_annotations_csv(path: Path) -> Iterator[EmoticPerson]:
    """Persons in file order; categories and VAD are already combined by the exporter."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                f"{path}: missing column(s) {', '.join(missing)}; expected the EMOTIC CSV export "
                f"with columns {', '.join(REQUIRED_COLUMNS)}, Continuous_Labels, Image Size, "
                "Gender, Age"
            )
        for row in reader:
            yield _person(row, path, reader.line_num)


def _person(row: dict[str, str], path: Path, line: int) -> EmoticPerson:
    box = _numbers(row, "BBox", path, line)
    if box is None or len(box) != 4:
        raise InputError(f"{path} line {line}: BBox must be [x1, y1, x2, y2], got {row['BBox']!r}")
    categories = _literal(row, "Categorical_Labels", path, line)
    if not isinstance(categories, list | tuple) or not all(isinstance(c, str) for c in categories):
        raise InputError(
            f"{path} line {line}: Categorical_Labels must be a list of category "
            f"names, got {row['Categorical_Labels']!r}"
        )
    vad = _numbers(row, "Continuous_Labels", path, line)
    size = _numbers(row, "Image Size", path, line)
    return EmoticPerson(
        folder=row["Folder"].strip(),
        filename=row["Filename"].strip(),
        box=(box[0], box[1], box[2], box[3]),
        categories=tuple(dict.fromkeys(c.strip() for c in categories)),
        vad=(vad[0], vad[1], vad[2]) if vad is not None and len(vad) == 3 else None,
        gender=(row.get("Gender") or "").strip(),
        age=(row.get("Age") or "").strip(),
        image_size=(int(size[0]), int(size[1])) if size is not None and len(size) == 2 else None,
        annotators=None,
    )


def _numbers(row: dict[str, str], column: str, path: Path, line: int) -> list[float] | None:
    """A list of numbers from a cell; None when the cell is empty or holds NaN."""
    text = (row.get(column) or "").strip()
    if not text or "nan" in text.lower():
        return None
    value = _literal(row, column, path, line)
    if not isinstance(value, list | tuple) or not all(isinstance(v, int | float) for v in value):
        raise InputError(f"{path} line {line}: {column} must be a list of numbers, got {text!r}")
    return [float(v) for v in value]


def _literal(row: dict[str, str], column: str, path: Path, line: int) -> Any:
    text = (row.get(column) or "").strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise InputError(
            f"{path} line {line}: cannot read {column} {text!r}; expected a list "
            "like [1, 2, 3] or ['Peace']"
        ) from None
