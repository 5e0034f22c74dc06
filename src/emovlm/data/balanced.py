"""Balanced evaluation subsets: a seeded, equal number of samples per class, saved as a manifest.

A class's pick depends only on the seed, the class's position in the label space and that class's
samples in dataset order, so the same seed picks the same samples from the dataset and from a
complete run of it, and adding samples of one class never changes the pick of another.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from emovlm.data.paths import is_inside
from emovlm.errors import InputError
from emovlm.labels import LabelSpace
from emovlm.types import Sample

logger = logging.getLogger(__name__)

PerClass = int | Literal["min"]
"""How many samples each class gets: a number, or "min" (the smallest class that has any)."""


@dataclass(frozen=True)
class BalancedSelection:
    """Which items a balanced subset keeps (positions in the input, in input order) and why."""

    indices: tuple[int, ...]
    per_class: int
    seed: int
    available: dict[str, int]
    taken: dict[str, int]
    short: tuple[str, ...]
    """Classes with fewer samples than `per_class` (all of them taken; only with allow_fewer)."""

    def summary(self) -> dict[str, object]:
        """The selection as a JSON-ready dict (without the indices)."""
        return {
            "per_class": self.per_class,
            "seed": self.seed,
            "n": len(self.indices),
            "available": self.available,
            "taken": self.taken,
            "short_classes": list(self.short),
            "absent_classes": [label for label, count in self.available.items() if not count],
        }


def parse_per_class(text: str | int) -> PerClass:
    """Read a --per-class value: a positive whole number or "min"."""
    if str(text).strip().lower() == "min":
        return "min"
    try:
        value = int(str(text))
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"--per-class takes a positive whole number or 'min', not {text!r}")
    return value


def balanced_selection(
    labels: Sequence[str],
    space: LabelSpace,
    per_class: PerClass,
    seed: int,
    *,
    allow_fewer: bool = False,
) -> BalancedSelection:
    """Pick `per_class` items of each class of `space` without replacement, seeded.

    `labels[i]` is item i's gold label. "min" takes the size of the smallest class that has items;
    classes with no items are left out (listed as absent). A class with fewer items than a number
    asked for is an error unless `allow_fewer`, which takes all of its items and warns.
    """
    if space.multi_label:
        raise InputError(
            f"label set {space.name!r} is multi-label: a sample counts towards several classes, so "
            "equal per-class counts are not defined; balance a single-label set"
        )
    members: dict[str, list[int]] = {label: [] for label in space.labels}
    for i, label in enumerate(labels):
        if label not in members:
            raise InputError(f"item {i} has label {label!r}, not a label of {space.name!r}")
        members[label].append(i)
    available = {label: len(items) for label, items in members.items()}
    present = [count for count in available.values() if count]
    if not present:
        raise InputError("nothing to balance: no items were given")
    target = min(present) if per_class == "min" else per_class
    short = tuple(label for label, count in available.items() if 0 < count < target)
    if short and not allow_fewer:
        listed = ", ".join(f"{label} ({available[label]})" for label in short)
        raise InputError(
            f"{len(short)} class(es) have fewer than {target} samples: {listed}; ask for "
            f"--per-class {min(present)} (or min), or pass --allow-fewer to take all of them"
        )
    if short:
        logger.warning("classes with fewer than %d samples are taken whole: %s", target, short)
    chosen: list[int] = []
    taken: dict[str, int] = {}
    for position, label in enumerate(space.labels):
        items = members[label]
        count = min(target, len(items))
        rng = np.random.default_rng([seed, position])
        picked = rng.choice(len(items), size=count, replace=False) if count else []
        chosen.extend(items[j] for j in picked)
        taken[label] = count
    return BalancedSelection(
        indices=tuple(sorted(chosen)),
        per_class=target,
        seed=seed,
        available=available,
        taken=taken,
        short=short,
    )


def balanced_samples(
    samples: Sequence[Sample],
    space: LabelSpace,
    per_class: PerClass,
    seed: int,
    *,
    allow_fewer: bool = False,
) -> tuple[list[Sample], BalancedSelection]:
    """The balanced subset of single-label samples (in their order) and the selection behind it."""
    for sample in samples:
        if len(sample.labels) != 1:
            raise InputError(
                f"sample {sample.id!r} has {len(sample.labels)} gold labels; balanced subsets "
                "need exactly one label per sample"
            )
    selection = balanced_selection(
        [s.labels[0] for s in samples], space, per_class, seed, allow_fewer=allow_fewer
    )
    return [samples[i] for i in selection.indices], selection


def write_manifest(samples: Sequence[Sample], path: Path, media_root: Path) -> bool:
    """Write samples as a manifest (id, path, label[, box][, vad]) that the manifest adapter reads.

    Paths are relative to `media_root` when the media lie under it, else absolute. Returns True
    when every path is relative (the manifest then opens with --root MEDIA_ROOT as it is).
    """
    media_root = _absolute(media_root)
    with_box = any(s.box is not None for s in samples)
    with_vad = any(s.vad is not None for s in samples)
    header = ["id", "path", "label"] + ["box"] * with_box + ["vad"] * with_vad
    all_relative = True
    rows = []
    for sample in samples:
        media = _absolute(sample.media)
        inside = is_inside(media, media_root)
        all_relative &= inside
        row = [sample.id, os.path.relpath(media, media_root) if inside else str(media)]
        row.append(sample.labels[0])
        if with_box:
            row.append("" if sample.box is None else ",".join(map(str, sample.box)))
        if with_vad:
            row.append("" if sample.vad is None else ",".join(map(str, sample.vad)))
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    return all_relative


def _absolute(path: Path) -> Path:
    """`path` made absolute and normalised without following links (as the adapters see it)."""
    return Path(os.path.normpath(os.path.abspath(path)))
