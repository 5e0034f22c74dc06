"""Paired bootstrap comparison of several configurations scored on the same samples.

Every configuration is resampled with the same sample indices (the bootstrap draws depend only
on the sample count, the number of resamples and the seed), so the difference of a metric
between two configurations is computed resample by resample: its interval reflects how the
two move together on the same clips, which is much narrower than comparing two separate
intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from emovlm.errors import InputError
from emovlm.eval.bootstrap import bootstrap_code_counts, percentile_intervals
from emovlm.eval.columns import answer_code, gold_indices
from emovlm.eval.metrics import EXTRA_COLUMNS, confusion_matrix, single_label_scores
from emovlm.labels import LabelSpace
from emovlm.types import Prediction

PAIRED_METRICS = ("macro_f1", "uar", "war")
"""Metrics compared by default: macro F1, UAR (macro recall) and WAR (accuracy)."""

Rows = tuple[Sequence[Prediction], Sequence[Sequence[str]]]
"""One configuration's predictions and gold labels, as RunStore.rows returns them."""


def paired_comparison(
    runs: Mapping[str, Rows],
    label_space: LabelSpace,
    reference: str,
    *,
    metrics: Sequence[str] = PAIRED_METRICS,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Each configuration's metrics with intervals, and its paired difference to `reference`.

    Only samples every configuration has a row for are compared (in the reference's order);
    failed and unusable answers count as wrong, as in scoring. Returns a JSON-able dict.
    """
    if reference not in runs:
        raise InputError(
            f"reference {reference!r} is not among the configurations: {', '.join(runs)}"
        )
    if label_space.multi_label:
        raise InputError(
            f"paired comparison scores single-label metrics; {label_space.name} is multi-label"
        )
    ids, gold = _common_samples(runs, reference, label_space)
    if not ids:
        raise InputError("the configurations share no scored sample; run them on the same dataset")
    k = len(label_space)
    n_columns = k + len(EXTRA_COLUMNS)
    points: dict[str, dict[str, float]] = {}
    resampled: dict[str, dict[str, np.ndarray]] = {}
    for name, (predictions, _) in runs.items():
        by_id = {p.sample_id: p for p in predictions}
        answers = np.array([answer_code(by_id[i], label_space) for i in ids])
        scores = single_label_scores(confusion_matrix(gold, answers, k))
        points[name] = {m: float(scores[m]) for m in metrics}
        counts = bootstrap_code_counts(gold * n_columns + answers, k * n_columns, n_bootstrap, seed)
        drawn = single_label_scores(counts.reshape(-1, k, n_columns))
        resampled[name] = {m: drawn[m] for m in metrics}
    settings = {
        name: {
            "n_rows": len(runs[name][0]),
            "metrics": points[name],
            "ci": percentile_intervals(resampled[name], level) if n_bootstrap else {},
        }
        for name in runs
    }
    differences = {
        name: {
            m: _difference(
                points[name][m] - points[reference][m],
                resampled[name][m] - resampled[reference][m],
                level,
            )
            for m in metrics
        }
        for name in runs
        if name != reference
    }
    return {
        "n": len(ids),
        "reference": reference,
        "metrics": list(metrics),
        "settings": settings,
        "differences": differences,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "ci_level": level,
    }


def _common_samples(
    runs: Mapping[str, Rows], reference: str, space: LabelSpace
) -> tuple[list[str], np.ndarray]:
    """Sample ids every configuration has (reference order) and their gold label indices."""
    shared = set.intersection(
        *({p.sample_id for p in predictions} for predictions, _ in runs.values())
    )
    ids: list[str] = []
    gold: list[int] = []
    golds = {
        name: {p.sample_id: tuple(g) for p, g in zip(predictions, labels, strict=True)}
        for name, (predictions, labels) in runs.items()
    }
    for prediction, labels in zip(*runs[reference], strict=True):
        sample_id = prediction.sample_id
        if sample_id not in shared:
            continue
        for name, by_id in golds.items():
            if set(by_id[sample_id]) != set(labels):
                raise InputError(
                    f"sample {sample_id!r} has gold {list(labels)} under {reference!r} but "
                    f"{list(by_id[sample_id])} under {name!r}; compare runs of the same dataset"
                )
        ids.append(sample_id)
        gold.append(gold_indices(labels, sample_id, space, multi=False)[0])
    return ids, np.array(gold, dtype=np.int64)


def _difference(point: float, draws: np.ndarray, level: float) -> dict[str, Any]:
    """A paired difference: the point value, its percentile interval and a two-sided bootstrap p."""
    if not draws.size:
        return {"diff": point, "ci": None, "p": None}
    share_up = float(np.mean(draws >= 0))
    share_down = float(np.mean(draws <= 0))
    return {
        "diff": point,
        "ci": percentile_intervals({"d": draws}, level).get("d"),
        "p": min(1.0, 2 * min(share_up, share_down)),
    }
