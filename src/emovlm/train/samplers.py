"""Class samplers: which training samples each epoch draws, from natural to class-balanced.

After Kang et al. (ICLR 2020, "Decoupling representation and classifier"): class j is drawn with
probability p_j = n_j^q / Σ_i n_i^q and a sample uniformly within its class, with q = 1 for
instance (natural) sampling, q = 1/2 for square-root sampling and q = 0 for class-balanced
sampling. Progressively balanced sampling moves from instance to class-balanced over training:
p_j(t) = (1 - t/T) p_j(q=1) + (t/T) p_j(q=0) at epoch t = 0 … T-1 of T.

Multi-label samples (EMOTIC) are counted under their rarest label: the label with the fewest
training samples (ties go to the label that comes first in the label space). n_j is then the
number of samples whose rarest label is j, so a balanced epoch gives each such group an equal
share, and a sample with one rare label is drawn as often as the rare label needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emovlm.errors import InputError
from emovlm.labels import LabelSpace

EXPONENTS: dict[str, float] = {"instance": 1.0, "square-root": 0.5, "class-balanced": 0.0}
"""The exponent q of each fixed sampler (p_j ∝ n_j^q)."""
SAMPLERS: tuple[str, ...] = (*EXPONENTS, "progressive")
"""Sampler names users pass to --sampler."""


def sampling_classes(sample_labels: Sequence[Sequence[str]], label_space: LabelSpace) -> np.ndarray:
    """Each sample's class index for sampling: its label, or its rarest label when it has several."""
    counts = np.zeros(len(label_space), dtype=np.int64)
    for i, labels in enumerate(sample_labels):
        if not labels:
            raise InputError(f"training sample {i} has no label; every sample needs one")
        for label in labels:
            if label not in label_space:
                raise InputError(
                    f"training sample {i}: label {label!r} is not in label set "
                    f"{label_space.name!r} ({', '.join(label_space.labels)})"
                )
        counts[[label_space.index(label) for label in set(labels)]] += 1
    return np.array(
        [
            min((label_space.index(label) for label in labels), key=lambda j: (counts[j], j))
            for labels in sample_labels
        ],
        dtype=np.int64,
    )


@dataclass(frozen=True)
class ClassSampler:
    """Draws one epoch of training-sample indices (as many as there are samples).

    `sample_class[i]` is sample i's sampling class (a label index), `n_classes` the size of the
    label space, and `epochs` the training length that the progressive sampler spreads its move
    from natural to balanced over.
    """

    name: str
    sample_class: np.ndarray
    n_classes: int
    epochs: int = 1

    @property
    def class_sizes(self) -> np.ndarray:
        """n_j: how many samples each sampling class holds (classes indexed as the label space)."""
        return np.bincount(self.sample_class, minlength=self.n_classes)

    def class_shares(self, epoch: int = 0) -> np.ndarray:
        """p_j: the expected share of an epoch's draws that falls on each class."""
        sizes = self.class_sizes.astype(np.float64)
        present = sizes > 0
        if self.name == "progressive":
            progress = min(max(epoch, 0), self.epochs) / self.epochs
            return (1 - progress) * _shares(sizes, present, 1.0) + progress * _shares(
                sizes, present, 0.0
            )
        return _shares(sizes, present, EXPONENTS[self.name])

    def probabilities(self, epoch: int = 0) -> np.ndarray:
        """Each sample's chance per draw: its class's share, split evenly within the class."""
        sizes = self.class_sizes
        return self.class_shares(epoch)[self.sample_class] / sizes[self.sample_class]

    def draw(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        """One epoch of sample indices: a shuffled pass for instance sampling, else draws with replacement."""
        n = len(self.sample_class)
        if self.name == "instance":
            return rng.permutation(n)
        return rng.choice(n, size=n, replace=True, p=self.probabilities(epoch))


def _shares(sizes: np.ndarray, present: np.ndarray, exponent: float) -> np.ndarray:
    weights = np.where(present, np.power(np.where(present, sizes, 1.0), exponent), 0.0)
    return weights / weights.sum()


def make_sampler(
    name: str,
    sample_labels: Sequence[Sequence[str]],
    label_space: LabelSpace,
    epochs: int = 1,
) -> ClassSampler:
    """The sampler `name` over samples with these gold labels, for a training of `epochs` epochs."""
    if name not in SAMPLERS:
        raise InputError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    if epochs < 1:
        raise InputError(f"epochs must be at least 1, got {epochs}")
    if not sample_labels:
        raise InputError("no training samples to draw from")
    return ClassSampler(
        name, sampling_classes(sample_labels, label_space), len(label_space), epochs
    )
