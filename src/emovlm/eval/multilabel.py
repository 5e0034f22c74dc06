"""Multi-label metrics (EMOTIC-style): macro P/R/F1, Hamming loss, subset accuracy, Jaccard, mAP.

Scores come from per-sample statistics that add up over samples, so a bootstrap resample is a
weighted sum of the same rows (see `emovlm.eval.bootstrap`).
"""

from __future__ import annotations

import numpy as np

from emovlm.eval.metrics import precision_recall_f1, safe_divide

EMOTIC_RECALL_POINTS = np.arange(11) / 10
"""Recall levels of the EMOTIC authors' interpolated AP: k/10 exactly, so recall 3/5 reaches 0.6."""


def sample_statistics(gold: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per-sample rows [tp_k…, fp_k…, fn_k…, mismatches, exact, Jaccard] from (n, K) indicators."""
    gold = np.asarray(gold, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    intersection = (gold & predicted).sum(axis=1)
    union = (gold | predicted).sum(axis=1)
    mismatches = (gold != predicted).sum(axis=1)
    return np.column_stack(
        [
            gold & predicted,
            ~gold & predicted,
            gold & ~predicted,
            mismatches,
            mismatches == 0,
            safe_divide(intersection, union),
        ]
    ).astype(float)


def multilabel_scores(sums: np.ndarray, n_labels: int, n_samples: np.ndarray | int) -> dict:
    """Macro P/R/F1, Hamming loss, subset accuracy and Jaccard from summed `sample_statistics` rows.

    `sums` has shape (..., 3K + 3); macro averages run over all K categories (sklearn's behaviour
    for indicator matrices, zero_division=0). `war` is the support-weighted (micro) recall.
    """
    k = n_labels
    true_positives = sums[..., :k]
    false_positives = sums[..., k : 2 * k]
    false_negatives = sums[..., 2 * k : 3 * k]
    support = true_positives + false_negatives
    predicted = true_positives + false_positives
    precision, recall, f1 = precision_recall_f1(true_positives, predicted, support)
    n = np.asarray(n_samples, dtype=float)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "predicted": predicted,
        "false_positives": false_positives,
        "macro_precision": precision.mean(axis=-1),
        "macro_recall": recall.mean(axis=-1),
        "macro_f1": f1.mean(axis=-1),
        "uar": recall.mean(axis=-1),
        "war": safe_divide(true_positives.sum(axis=-1), support.sum(axis=-1)),
        "hamming": safe_divide(sums[..., 3 * k], n * k),
        "subset_accuracy": safe_divide(sums[..., 3 * k + 1], n),
        "jaccard": safe_divide(sums[..., 3 * k + 2], n),
    }


def _precision_recall_at_thresholds(
    gold: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Precision and recall at each distinct score, highest first (ties form one step)."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    true_positives = np.cumsum(gold[order])
    last_of_ties = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
    tp = true_positives[last_of_ties].astype(float)
    n_positive = int(gold.sum())
    precision = tp / (last_of_ties + 1)
    recall = tp / n_positive if n_positive else np.zeros_like(tp)
    return precision, recall, n_positive


def average_precision(gold: np.ndarray, scores: np.ndarray) -> float:
    """Step-wise AP as sklearn's AP: Σ (R_t - R_{t-1}) P_t; 0 if no positive."""
    gold = np.asarray(gold, dtype=bool)
    precision, recall, n_positive = _precision_recall_at_thresholds(gold, np.asarray(scores, float))
    if n_positive == 0:
        return 0.0
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def emotic_average_precision(gold: np.ndarray, scores: np.ndarray) -> float:
    """The EMOTIC authors' 11-point interpolated AP; 0 if no positive.

    Mean over recall levels 0, 0.1, …, 1 of the highest precision at recall ≥ that level (0 when
    no threshold reaches it), as in rkosti/emotic src/funcs.lua (precisionrecallvector).
    """
    gold = np.asarray(gold, dtype=bool)
    precision, recall, n_positive = _precision_recall_at_thresholds(gold, np.asarray(scores, float))
    if n_positive == 0:
        return 0.0
    reached = recall[None, :] >= EMOTIC_RECALL_POINTS[:, None]
    best = np.where(reached, precision[None, :], 0.0).max(axis=1)
    return float(best.mean())


def emotic_rank_average_precision(gold: np.ndarray, scores: np.ndarray) -> float:
    """The EMOTIC authors' 11-point AP walked rank by rank, ties in sample order; 0 if no positive.

    As rkosti/emotic's precisionrecallvector: samples sorted by score, highest first, precision
    and recall taken after every single sample, so tied scores (0/1 answers) give one point per
    sample and the result depends on the tie order; here tied samples keep their order in the
    data (a stable sort). `emotic_average_precision` takes one point per distinct score instead.
    """
    gold = np.asarray(gold, dtype=bool)
    n_positive = int(gold.sum())
    if n_positive == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, float), kind="stable")
    true_positives = np.cumsum(gold[order])
    precision = true_positives / np.arange(1, len(order) + 1)
    recall = true_positives / n_positive
    reached = recall[None, :] >= EMOTIC_RECALL_POINTS[:, None]
    return float(np.where(reached, precision[None, :], 0.0).max(axis=1).mean())


AP_DEFINITIONS = {
    "sklearn": average_precision,
    "emotic": emotic_average_precision,
    "emotic-rank": emotic_rank_average_precision,
}
"""AP definitions by name: sklearn's step-wise AP, EMOTIC's 11-point AP per distinct score, and
EMOTIC's 11-point AP rank by rank (the authors' code, ties in sample order)."""


def average_precision_per_class(
    gold: np.ndarray, scores: np.ndarray, *, definition: str = "sklearn"
) -> np.ndarray:
    """AP of each column of (n, K) gold indicators and scores; a definition of AP_DEFINITIONS."""
    function = AP_DEFINITIONS[definition]
    return np.array([function(gold[:, k], scores[:, k]) for k in range(gold.shape[1])])
