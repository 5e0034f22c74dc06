"""Reading the persons of one split from EMOTIC's official Annotations.mat (scipy.io.loadmat)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy.io import loadmat, whosmat
from scipy.io.matlab import MatReadError

from emovlm.errors import InputError
from emovlm.types import Box

Combine = Literal["official", "union", "majority"]
COMBINE_CHOICES: tuple[str, ...] = ("official", "union", "majority")
VAD = tuple[float, float, float]


@dataclass(frozen=True)
class EmoticPerson:
    """One annotated person of an EMOTIC image, as the annotation files give it."""

    folder: str
    filename: str
    box: Box
    categories: tuple[str, ...]
    vad: VAD | None
    gender: str
    age: str
    image_size: tuple[int, int] | None
    annotators: int | None


def read_annotations_mat(path: Path, split: str, combine: Combine) -> Iterator[EmoticPerson]:
    """Persons of `split` in image order; several annotators' categories are merged per `combine`.

    `official` takes the `combined_categories` the dataset ships for val/test (train has one
    annotator), `union` keeps every category any annotator chose, `majority` keeps those chosen by
    at least half of them. VAD is `combined_continuous` when present, else the annotators' mean.
    """
    table = _load_split(path, split)
    for image_number, image in enumerate(_items(table), start=1):
        folder, filename = _text(_field(image, "folder")), _text(_field(image, "filename"))
        if not filename:
            raise InputError(
                f"{path}: {split} image {image_number} has no filename; is this "
                "EMOTIC's Annotations.mat?"
            )
        size = _image_size(image)
        for person in _items(_field(image, "person")):
            yield _person(person, folder, filename, size, combine, path)


def _load_split(path: Path, split: str) -> Any:
    try:
        names = [name for name, _, _ in whosmat(path)]
        if split not in names:
            raise InputError(
                f"{path} has no {split!r} table (it has: {', '.join(names)}); "
                "choose --split from train, val, test"
            )
        return loadmat(path, variable_names=[split], squeeze_me=True, struct_as_record=False)[split]
    except (MatReadError, ValueError, NotImplementedError, OSError, TypeError) as exc:
        raise InputError(
            f"cannot read {path} as a MATLAB v5 file ({exc}); use EMOTIC's "
            "Annotations.mat or its CSV export (annotations_file=)"
        ) from None


def _person(
    person: Any,
    folder: str,
    filename: str,
    size: tuple[int, int] | None,
    combine: Combine,
    path: Path,
) -> EmoticPerson:
    box_values = [float(v) for v in np.ravel(_field(person, "body_bbox"))]
    if len(box_values) != 4:
        raise InputError(
            f"{path}: {folder}/{filename} has a person whose body_bbox is not "
            f"4 numbers ({box_values})"
        )
    per_annotator = [
        _strings(_field(a, "categories")) for a in _items(_field(person, "annotations_categories"))
    ]
    vads = [v for v in (_vad(a) for a in _items(_field(person, "annotations_continuous"))) if v]
    combined_vad = _vad(_field(person, "combined_continuous"))
    return EmoticPerson(
        folder=folder,
        filename=filename,
        box=(box_values[0], box_values[1], box_values[2], box_values[3]),
        categories=_merge(per_annotator, _field(person, "combined_categories"), combine),
        vad=combined_vad or _mean(vads),
        gender=_text(_field(person, "gender")),
        age=_text(_field(person, "age")),
        image_size=size,
        annotators=len(per_annotator),
    )


def _merge(per_annotator: list[list[str]], combined: Any, combine: Combine) -> tuple[str, ...]:
    if combine == "official" and combined is not None:
        return tuple(dict.fromkeys(_strings(combined)))
    if combine == "majority":
        counts: dict[str, int] = {}
        for categories in per_annotator:
            for category in dict.fromkeys(categories):
                counts[category] = counts.get(category, 0) + 1
        return tuple(c for c, n in counts.items() if 2 * n >= len(per_annotator))
    return tuple(dict.fromkeys(c for categories in per_annotator for c in categories))


def _vad(value: Any) -> VAD | None:
    """Valence, arousal, dominance of one annotation struct; None when absent or not a number."""
    if value is None:
        return None
    fields = [_field(value, name) for name in ("valence", "arousal", "dominance")]
    if any(f is None for f in fields):
        inner = getattr(value, "_fieldnames", [])
        return _vad(_field(value, inner[0])) if len(inner) == 1 else None
    try:
        numbers = [float(np.ravel(f)[0]) for f in fields]
    except (IndexError, TypeError, ValueError):
        return None
    if any(math.isnan(n) for n in numbers):
        return None
    return numbers[0], numbers[1], numbers[2]


def _mean(vads: list[VAD]) -> VAD | None:
    if not vads:
        return None
    return tuple(sum(v[i] for v in vads) / len(vads) for i in range(3))  # type: ignore[return-value]


def _image_size(image: Any) -> tuple[int, int] | None:
    size = _field(image, "image_size")
    width, height = _field(size, "n_col"), _field(size, "n_row")
    if width is None or height is None:
        return None
    return int(np.ravel(width)[0]), int(np.ravel(height)[0])


def _field(struct: Any, name: str) -> Any:
    return getattr(struct, name, None) if struct is not None else None


def _items(value: Any) -> list[Any]:
    """A squeezed MATLAB value as a list: arrays flattened, one struct or string as [it]."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _strings(value: Any) -> list[str]:
    return [text for text in (_text(v) for v in _items(value)) if text]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
