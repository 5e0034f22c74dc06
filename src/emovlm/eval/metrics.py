"""Single-label metrics computed from confusion counts, batched so bootstrap resamples run at once.

Every function here works on arrays whose last axes are the confusion matrix (or per-class counts),
with any number of leading batch axes: one call scores the full sample or 10,000 resamples.
"""

from __future__ import annotations

import numpy as np

EXTRA_COLUMNS = ("out_of_set", "unparsed", "failed")
"""Confusion-matrix columns after the label columns: answers that name no label of the space."""


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, with 0 where the denominator is 0 (sklearn's zero_division=0)."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def confusion_matrix(gold: np.ndarray, predicted: np.ndarray, n_labels: int) -> np.ndarray:
    """Counts of (gold label, answer) pairs: shape (K, K + 3), extra columns as in EXTRA_COLUMNS.

    `gold` holds label indices in [0, K); `predicted` holds label indices or K + i for the i-th
    extra column (out of set, unparsed, failed).
    """
    n_columns = n_labels + len(EXTRA_COLUMNS)
    codes = np.asarray(gold, dtype=np.int64) * n_columns + np.asarray(predicted, dtype=np.int64)
    counts = np.bincount(codes, minlength=n_labels * n_columns)
    return counts.reshape(n_labels, n_columns)


def per_class_counts(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """True positives, gold support and answers per label from (..., K, K + 3) confusion counts."""
    n_labels = confusion.shape[-2]
    label_part = confusion[..., :n_labels]
    true_positives = np.diagonal(label_part, axis1=-2, axis2=-1)
    return {
        "tp": true_positives,
        "support": confusion.sum(axis=-1),
        "predicted": label_part.sum(axis=-2),
    }


def precision_recall_f1(
    true_positives: np.ndarray, predicted: np.ndarray, support: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 (each 0 where undefined, as sklearn's zero_division=0)."""
    precision = safe_divide(true_positives, predicted)
    recall = safe_divide(true_positives, support)
    f1 = safe_divide(2 * true_positives, predicted + support)
    return precision, recall, f1


def single_label_scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """UAR, WAR, macro precision/recall/F1, per-class scores and answer rates from confusion counts.

    Macro averages run over the labels that have gold samples (sklearn with `labels=` the labels
    present in gold), so a label absent from an evaluation set neither lowers nor raises UAR.
    """
    counts = per_class_counts(confusion)
    n_labels = confusion.shape[-2]
    total = confusion.sum(axis=(-2, -1))
    precision, recall, f1 = precision_recall_f1(
        counts["tp"], counts["predicted"], counts["support"]
    )
    extra_totals = confusion[..., n_labels:].sum(axis=-2)
    scores = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": counts["support"],
        "predicted": counts["predicted"],
        "war": safe_divide(counts["tp"].sum(axis=-1), total),
        "uar": _mean_over_supported(recall, counts["support"]),
        "macro_precision": _mean_over_supported(precision, counts["support"]),
        "macro_recall": _mean_over_supported(recall, counts["support"]),
        "macro_f1": _mean_over_supported(f1, counts["support"]),
    }
    for i, column in enumerate(EXTRA_COLUMNS):
        scores[f"{column}_rate"] = safe_divide(extra_totals[..., i], total)
    return scores


def _mean_over_supported(values: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Mean over the last axis, counting only labels with gold support (0 when none has any)."""
    present = support > 0
    return safe_divide((values * present).sum(axis=-1), present.sum(axis=-1))


def top_k_accuracy(gold_rank: np.ndarray, max_k: int) -> dict[int, float]:
    """Share of samples whose gold label is among the first k answers, for k = 1..max_k.

    `gold_rank[i]` is the 1-based position of sample i's gold label in its ranked answers, 0 when
    the gold label is not among them.
    """
    gold_rank = np.asarray(gold_rank)
    if gold_rank.size == 0:
        return {k: 0.0 for k in range(1, max_k + 1)}
    hits = gold_rank > 0
    return {k: float(np.mean(hits & (gold_rank <= k))) for k in range(1, max_k + 1)}
