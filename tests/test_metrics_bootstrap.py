"""Bootstrap intervals: seeded, equal to a plain per-resample loop, sensible widths, fast."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import recall_score

from emovlm.eval.bootstrap import percentile_intervals, resample_indices
from emovlm.eval.scoring import score_file, score_predictions
from emovlm.labels import get_label_space
from emovlm.types import Prediction, Status

DFEW = get_label_space("dfew")


def _random_run(n: int, seed: int, accuracy: float = 0.5) -> tuple[list, list[Prediction]]:
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, len(DFEW), n)
    right = rng.random(n) < accuracy
    answers = np.where(right, gold, rng.integers(0, len(DFEW), n))
    predictions = [Prediction(str(i), (DFEW.labels[a],)) for i, a in enumerate(answers)]
    return [(DFEW.labels[g],) for g in gold], predictions


@pytest.fixture(scope="module")
def dfew_run(gpt4v_dir: Path) -> tuple[dict, list[Prediction], list]:
    return score_file(gpt4v_dir / "dfew.csv", "dfew", pred_column="gpt4v", n_bootstrap=0)


def test_same_seed_gives_same_intervals_and_another_seed_differs(dfew_run) -> None:
    _, predictions, gold = dfew_run
    first = score_predictions(gold, predictions, DFEW, n_bootstrap=300, seed=5)
    again = score_predictions(gold, predictions, DFEW, n_bootstrap=300, seed=5)
    other = score_predictions(gold, predictions, DFEW, n_bootstrap=300, seed=6)
    assert first["ci"] == again["ci"]
    assert first["ci"]["uar"] != other["ci"]["uar"]
    assert (first["n_bootstrap"], first["seed"], first["ci_level"]) == (300, 5, 0.95)


def test_intervals_contain_the_point_estimates(dfew_run) -> None:
    _, predictions, gold = dfew_run
    metrics = score_predictions(gold, predictions, DFEW, n_bootstrap=1000)
    for key in ("uar", "war", "macro_precision", "macro_f1", "head_recall", "tail_recall"):
        lo, hi = metrics["ci"][key]
        assert 0.0 <= lo <= metrics[key] <= hi <= 1.0, key
    for row in metrics["per_class"].values():
        assert row["recall_ci"][0] <= row["recall"] <= row["recall_ci"][1]


def test_vectorised_intervals_equal_a_plain_loop_over_the_same_resamples(dfew_run) -> None:
    _, predictions, gold = dfew_run
    metrics = score_predictions(gold, predictions, DFEW, n_bootstrap=200, seed=3)
    y_true = np.array([g[0] for g in gold])
    y_pred = np.array([p.top if p.status is Status.OK else "<other>" for p in predictions])
    uar = [
        recall_score(
            y_true[i], y_pred[i], labels=sorted(set(y_true[i])), average="macro", zero_division=0
        )
        for block in resample_indices(len(gold), 200, seed=3)
        for i in block
    ]
    assert metrics["ci"]["uar"] == pytest.approx(
        percentile_intervals({"uar": np.array(uar)})["uar"]
    )


def test_intervals_narrow_as_samples_grow() -> None:
    widths = []
    for n in (200, 2000, 20000):
        gold, predictions = _random_run(n, seed=n)
        ci = score_predictions(gold, predictions, DFEW, n_bootstrap=400)["ci"]
        widths.append((ci["war"][1] - ci["war"][0], ci["uar"][1] - ci["uar"][0]))
    assert widths[0][0] > widths[1][0] > widths[2][0]
    assert widths[0][1] > widths[1][1] > widths[2][1]
    # the width of a proportion's CI shrinks like 1/sqrt(n): about sqrt(10) per step
    assert 2.0 < widths[0][0] / widths[1][0] < 5.0


def test_ten_thousand_resamples_of_ten_thousand_samples_take_seconds() -> None:
    gold, predictions = _random_run(10_000, seed=1)
    start = time.perf_counter()
    metrics = score_predictions(gold, predictions, DFEW, n_bootstrap=10_000)
    elapsed = time.perf_counter() - start
    assert elapsed < 20.0, f"{elapsed:.1f} s"
    lo, hi = metrics["ci"]["war"]
    assert lo < metrics["war"] < hi


def test_multi_label_intervals_cover_their_metrics() -> None:
    emotic = get_label_space("emotic")
    rng = np.random.default_rng(0)
    gold, predictions = [], []
    for i in range(400):
        g = tuple(rng.choice(emotic.labels, size=rng.integers(1, 4), replace=False))
        noise = tuple(rng.choice(emotic.labels, size=2, replace=False))
        gold.append(g)
        predictions.append(Prediction(str(i), g[:1] + noise))
    metrics = score_predictions(gold, predictions, emotic, n_bootstrap=500)
    for key in ("macro_f1", "hamming", "subset_accuracy", "jaccard", "war"):
        lo, hi = metrics["ci"][key]
        assert lo <= metrics[key] <= hi, key
