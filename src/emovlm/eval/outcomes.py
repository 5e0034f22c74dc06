"""Per-sample label outcomes as indicator rows, so per-class scores can be bootstrapped from sums.

Single-label answers become one-hot rows (the top answer when it is a label, nothing otherwise);
multi-label answers mark every answered label, as the Scorer counts them. The rows feed
`multilabel.sample_statistics`, whose sums give per-class precision, recall and F1 for the full
set or for every bootstrap resample at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emovlm.eval.bootstrap import bootstrap_sums
from emovlm.eval.metrics import safe_divide
from emovlm.eval.multilabel import multilabel_scores, sample_statistics
from emovlm.labels import LabelSpace
from emovlm.types import Prediction, Status


def label_indicators(
    gold: Sequence[Sequence[str]], predictions: Sequence[Prediction], space: LabelSpace
) -> tuple[np.ndarray, np.ndarray]:
    """(gold, answered) boolean matrices (n, K) of each sample's gold labels and answered labels.

    Single-label spaces count only an ok top answer that is a label; multi-label spaces count every
    answered label unless the sample failed or was unparsed (as `score_predictions` does).
    """
    n, k = len(predictions), len(space)
    gold_matrix = np.zeros((n, k), dtype=bool)
    answered = np.zeros((n, k), dtype=bool)
    for i, (labels, prediction) in enumerate(zip(gold, predictions, strict=True)):
        gold_matrix[i, [space.index(label) for label in labels]] = True
        status = Status(prediction.status)
        if space.multi_label:
            if status not in (Status.FAILED, Status.UNPARSED):
                answered[i, [space.index(a) for a in prediction.labels if a in space]] = True
        elif status is Status.OK and prediction.top in space:
            answered[i, space.index(prediction.top)] = True
    return gold_matrix, answered


def class_scores(gold: np.ndarray, answered: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision/recall/F1, support and answer counts, plus UAR, WAR and macro F1.

    UAR and macro F1 are means over the classes with gold support (as the Scorer's single-label
    metrics); WAR is the share of gold labels answered (accuracy for single-label sets).
    """
    rows = sample_statistics(gold, answered)
    return _scores_from_sums(rows.sum(axis=0), gold.shape[1], len(rows))


def resampled_class_scores(
    gold: np.ndarray, answered: np.ndarray, n_bootstrap: int, seed: int
) -> dict[str, np.ndarray]:
    """`class_scores` of each of `n_bootstrap` seeded resamples of the samples (leading axis).

    The same seed and sample count draw the same resamples, so two answer sets on the same
    samples (before and after a correction) are resampled in pairs.
    """
    rows = sample_statistics(gold, answered)
    return _scores_from_sums(bootstrap_sums(rows, n_bootstrap, seed), gold.shape[1], len(rows))


def _scores_from_sums(sums: np.ndarray, n_labels: int, n_samples: int) -> dict[str, np.ndarray]:
    scores = multilabel_scores(sums, n_labels, n_samples)
    present = scores["support"] > 0
    scores["uar"] = safe_divide((scores["recall"] * present).sum(-1), present.sum(-1))
    scores["macro_f1"] = safe_divide((scores["f1"] * present).sum(-1), present.sum(-1))
    return scores
