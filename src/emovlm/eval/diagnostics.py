"""Collapse diagnostics: predicted vs gold shares, the sink label, KL divergence, head/tail recall.

The array functions accept leading batch axes so the bootstrap can evaluate them on resamples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from emovlm.eval.metrics import safe_divide

KL_SMOOTHING = 0.5
"""Pseudo-count added to every label's count before the KL divergence (no zero probabilities)."""

HEAD_COVERAGE = 0.5
"""Head classes: the most frequent gold classes that together hold at least this sample share."""


def kl_divergence(
    predicted_counts: np.ndarray, gold_counts: np.ndarray, smoothing: float = KL_SMOOTHING
) -> np.ndarray:
    """KL(predicted ‖ gold) in nats between label marginals, `smoothing` added to every count."""
    p = np.asarray(predicted_counts, dtype=float) + smoothing
    q = np.asarray(gold_counts, dtype=float) + smoothing
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    return np.sum(p * np.log(p / q), axis=-1)


def head_tail_split(support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of head and tail classes among classes with gold samples (see HEAD_COVERAGE).

    Classes are ranked by gold support, most frequent first (ties keep label-space order); the head
    is the shortest prefix holding at least HEAD_COVERAGE of the samples, the tail the rest.
    Classes without gold samples are in neither.
    """
    support = np.asarray(support, dtype=float)
    present = np.flatnonzero(support > 0)
    if present.size == 0:
        return present, present
    ranked = present[np.argsort(-support[present], kind="stable")]
    covered = np.cumsum(support[ranked]) / support[ranked].sum()
    n_head = int(np.searchsorted(covered, HEAD_COVERAGE - 1e-12)) + 1
    return np.sort(ranked[:n_head]), np.sort(ranked[n_head:])


def group_recall(recall: np.ndarray, classes: np.ndarray) -> np.ndarray | None:
    """Mean recall over the given classes (last axis), or None when there are none."""
    if len(classes) == 0:
        return None
    return np.asarray(recall)[..., classes].mean(axis=-1)


def find_sink(
    labels: Sequence[str],
    predicted_share: np.ndarray,
    gold_share: np.ndarray,
    false_positives: np.ndarray,
    cross_counts: np.ndarray,
    n_samples: int,
    support: np.ndarray,
) -> dict | None:
    """The most over-predicted label (largest predicted share minus gold share), or None if none is.

    `cross_counts[g, k]` counts samples of gold class g answered k; `false_positives[k]` counts
    samples without gold k answered k (the samples the sink absorbed from other classes).
    """
    excess = np.asarray(predicted_share) - np.asarray(gold_share)
    if excess.size == 0 or excess.max() <= 0:
        return None
    k = int(np.argmax(excess))
    others = n_samples - int(support[k])
    sources = {
        labels[g]: int(cross_counts[g, k])
        for g in np.argsort(-cross_counts[:, k], kind="stable")
        if g != k and cross_counts[g, k] > 0
    }
    return {
        "label": labels[k],
        "predicted_share": float(predicted_share[k]),
        "gold_share": float(gold_share[k]),
        "excess": float(excess[k]),
        "absorbed": int(false_positives[k]),
        "absorbed_share": float(safe_divide(false_positives[k], others)),
        "absorbed_from": sources,
    }


def collapse_diagnostics(
    labels: Sequence[str],
    scores: Mapping[str, np.ndarray],
    false_positives: np.ndarray,
    cross_counts: np.ndarray,
    n_samples: int,
) -> dict:
    """Shares, sink, KL(predicted ‖ gold) and head/tail recall for one scored set, JSON-ready.

    `scores` holds the per-label counts `predicted` and `support` and the per-label `recall`.
    Shares are per sample: the share of samples answered (or labelled) with each label.
    """
    predicted, support, recall = scores["predicted"], scores["support"], scores["recall"]
    predicted_share = safe_divide(predicted, n_samples)
    gold_share = safe_divide(support, n_samples)
    head, tail = head_tail_split(support)
    head_recall = group_recall(recall, head)
    tail_recall = group_recall(recall, tail)
    return {
        "predicted_share": dict(zip(labels, map(float, predicted_share), strict=True)),
        "gold_share": dict(zip(labels, map(float, gold_share), strict=True)),
        "sink": find_sink(
            labels, predicted_share, gold_share, false_positives, cross_counts, n_samples, support
        ),
        "kl_pred_gold": float(kl_divergence(predicted, support)),
        "head_labels": [labels[i] for i in head],
        "tail_labels": [labels[i] for i in tail],
        "head_recall": None if head_recall is None else float(head_recall),
        "tail_recall": None if tail_recall is None else float(tail_recall),
    }
