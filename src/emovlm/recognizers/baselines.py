"""Label-prior baselines: majority-k, uniform random-k and frequency-weighted random-k.

None of them looks at the media. Majority and weighted random learn label frequencies from a
training split through `fit(dataset)` (`emovlm eval` calls it with `--fit-split`, default train).
Random draws are seeded per sample (hash of the seed and the sample id), so a prediction does not
depend on batch size, order or resuming.

Expected scores, for any gold labels, since the answers are independent of them (`p_c` is the
share of samples with label c, K the number of labels): uniform random-k includes each label
with probability k/K; weighted random-k includes label c with probability `pi_c` proportional to
its training frequency (capped at 1, sum k), drawn by randomised systematic sampling, so each
label's expected recall is `pi_c` and macro recall is k/K for both; every label's expected
precision is `p_c`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from emovlm.errors import InputError
from emovlm.labels import LabelSpace
from emovlm.recognizers.settings import BaselineSettings, RandomSettings, with_settings
from emovlm.types import Prediction, Sample


def label_counts(samples: Iterable[Sample], label_space: LabelSpace) -> dict[str, int]:
    """How many samples carry each label of the space (every label listed, zeros included)."""
    counts: Counter[str] = Counter()
    for sample in samples:
        labels = {label_space.normalize(label) for label in sample.labels}
        counts.update(label for label in labels if label is not None)
    return {label: counts[label] for label in label_space.labels}


def inclusion_probabilities(weights: Sequence[float], k: int) -> np.ndarray:
    """Per-label probabilities proportional to `weights`, each at most 1, summing to k (πps).

    Labels whose share would pass 1 are set to 1 and the rest rescaled, repeatedly; when k is at
    least the number of labels with positive weight, those all get 1.
    """
    w = np.asarray(weights, dtype=float)
    pi = np.zeros_like(w)
    positive = w > 0
    if k >= positive.sum():
        pi[positive] = 1.0
        return pi
    capped = np.zeros_like(positive)
    while True:
        free = positive & ~capped
        pi[free] = (k - capped.sum()) * w[free] / w[free].sum()
        pi[capped] = 1.0
        over = free & (pi >= 1.0)
        if not over.any():
            return pi
        capped |= over


def systematic_sample(pi: np.ndarray, rng: np.random.Generator) -> list[int]:
    """Indices drawn with inclusion probabilities `pi` (sum k): randomised systematic sampling."""
    order = rng.permutation(len(pi))
    edges = np.concatenate([[0.0], np.cumsum(pi[order])])
    k = int(round(edges[-1]))
    points = rng.uniform() + np.arange(k)
    slots = np.searchsorted(edges, points, side="right") - 1
    return [int(order[min(s, len(pi) - 1)]) for s in slots]


def draw_labels(pi: np.ndarray, seed: int, sample_id: str) -> list[int]:
    """Label indices for one sample, from a generator seeded by (seed, sample id) alone."""
    digest = hashlib.sha256(f"{seed}\0{sample_id}".encode()).digest()
    return systematic_sample(pi, np.random.default_rng(int.from_bytes(digest[:8], "little")))


@with_settings(BaselineSettings)
class _KBaseline:
    """Shared parts of the baselines: the label space, k, config and answer building."""

    name = ""
    settings_class: type[BaselineSettings] = BaselineSettings

    def __init__(
        self, label_space: LabelSpace, settings: BaselineSettings | None = None, **options: Any
    ) -> None:
        self.spec = self.settings_class.of(settings, options)
        self.label_space = label_space
        self.k = min(self.spec.k, len(label_space))
        self.counts: dict[str, int] | None = None
        self.fit_source: dict[str, Any] = {}

    def config(self) -> dict[str, Any]:
        """The settings that determine the answers."""
        settings = self.spec.recorded()
        return {
            "recognizer": self.name,
            "label_set": self.label_space.name,
            **settings,
            "k": self.k,
            "settings": settings,
        }

    def _prediction(
        self, sample: Sample, labels: Sequence[str], scores: Mapping[str, float] | None = None
    ) -> Prediction:
        return Prediction(sample.id, labels=tuple(labels), scores=scores, raw=", ".join(labels))

    def _drawn(self, samples: Sequence[Sample], pi: np.ndarray, seed: int) -> list[Prediction]:
        labels = self.label_space.labels
        return [
            self._prediction(s, [labels[i] for i in draw_labels(pi, seed, s.id)]) for s in samples
        ]


class _FittedBaseline(_KBaseline):
    """A baseline that needs the label counts of a training split (`fit`)."""

    def fit(self, dataset: Any) -> None:
        """Learn label frequencies from a dataset (its `samples()`), usually the training split."""
        samples = list(dataset.samples())
        counts = label_counts(samples, self.label_space)
        if not any(counts.values()):
            raise InputError(
                f"{self.name}: the fit split has no labelled samples of {self.label_space.name}; "
                "pick another --fit-split"
            )
        self.counts = counts
        source = dataset.config() if hasattr(dataset, "config") else {}
        self.fit_source = {"split": source.get("split"), "n": len(samples)}

    def _counts(self) -> dict[str, int]:
        if self.counts is None:
            raise InputError(
                f"--recognizer {self.name} needs the training split's label frequencies: run it "
                "with `emovlm eval` (it fits on --fit-split, default train) or call fit(dataset)"
            )
        return self.counts

    def config(self) -> dict[str, Any]:
        """k, the fitted label counts and where they came from (they determine the answers)."""
        return {**super().config(), "fit_counts": self._counts(), "fit": self.fit_source}


class MajorityRecognizer(_FittedBaseline):
    """Always the k most frequent labels of the training split, most frequent first.

    Scores are the training frequencies, so mAP is that of a constant prior.
    """

    name = "majority"

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """The same k labels (and prior scores) for every sample."""
        counts = self._counts()
        labels = self.label_space.labels
        ranked = sorted(labels, key=lambda lab: (-counts[lab], self.label_space.index(lab)))
        total = sum(counts.values())
        scores = {lab: counts[lab] / total for lab in labels}
        return [self._prediction(s, ranked[: self.k], scores) for s in samples]


@with_settings(RandomSettings)
class RandomRecognizer(_KBaseline):
    """k labels drawn uniformly at random without replacement, seeded per sample."""

    name = "random"

    settings_class = RandomSettings

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """k distinct labels per sample, each label with probability k/K."""
        pi = np.full(len(self.label_space), self.k / len(self.label_space))
        return self._drawn(samples, pi, self.spec.draw_seed)


@with_settings(RandomSettings)
class WeightedRandomRecognizer(_FittedBaseline):
    """k distinct labels per sample, each included with probability proportional to its frequency."""

    name = "weighted-random"

    settings_class = RandomSettings

    def inclusion(self) -> np.ndarray:
        """Each label's probability of being drawn (training-frequency πps, summing to k)."""
        counts = self._counts()
        return inclusion_probabilities([counts[lab] for lab in self.label_space.labels], self.k)

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """k distinct labels per sample, label c drawn with probability `inclusion()[c]`."""
        return self._drawn(samples, self.inclusion(), self.spec.draw_seed)
