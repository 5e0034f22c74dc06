"""Labelled training samples, checked before any training starts: labels in the space, no empty class."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from emovlm.data.base import Dataset
from emovlm.errors import InputError
from emovlm.labels import LabelSpace
from emovlm.train.samplers import sampling_classes
from emovlm.types import Sample


def label_counts(sample_labels: Sequence[Sequence[str]], label_space: LabelSpace) -> dict[str, int]:
    """How many samples carry each label, in the label space's order (zeros included)."""
    counts = Counter(label for labels in sample_labels for label in set(labels))
    return {label: counts[label] for label in label_space.labels}


def check_classes(
    sample_labels: Sequence[Sequence[str]],
    label_space: LabelSpace,
    *,
    allow_missing_classes: bool = False,
    where: str = "the training split",
) -> tuple[str, ...]:
    """The labels without samples; an error naming them unless `allow_missing_classes`.

    Also refuses samples without a label and labels outside the label space.
    """
    sampling_classes(sample_labels, label_space)
    missing = tuple(label for label, n in label_counts(sample_labels, label_space).items() if not n)
    if missing and not allow_missing_classes:
        raise InputError(
            f"{len(missing)} class(es) of {label_space.name} have no samples in {where}: "
            f"{', '.join(missing)}; a head cannot learn a class it never sees and a balanced "
            "sampler cannot draw it. Add samples of these classes, or pass "
            "--allow-missing-classes to train without them (they are listed in the head file)"
        )
    return missing


def labelled_samples(dataset: Dataset) -> list[Sample]:
    """The dataset's samples, refusing an empty split and unlabelled samples."""
    samples = list(dataset.samples())
    if not samples:
        raise InputError(f"dataset {dataset.name!r} has no samples in this split; check --split")
    unlabelled = [s.id for s in samples if not s.labels]
    if unlabelled:
        raise InputError(
            f"{len(unlabelled)} sample(s) of {dataset.name!r} have no label (first: "
            f"{unlabelled[0]!r}); training needs a gold label on every sample"
        )
    return samples
