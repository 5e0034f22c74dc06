"""Scoring a stored run chunk by chunk, column-wise, gives exactly the metrics of scoring it whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emovlm.errors import InputError
from emovlm.eval import bootstrap
from emovlm.eval.bootstrap import bootstrap_code_counts, bootstrap_code_sums
from emovlm.eval.columns import EXTRA_KEYS, ScoreColumns
from emovlm.eval.scoring import score_predictions
from emovlm.labels import get_label_space
from emovlm.run.store import RunStore
from emovlm.types import Prediction, Status

EMOTIC = get_label_space("emotic")


def _emotic_run(n: int) -> tuple[list[Prediction], list[tuple[str, ...]], list]:
    """Multi-label answers of every kind: scored or not, out-of-set words, failures, VAD, parser
    readings."""
    rng = np.random.default_rng(5)
    labels = EMOTIC.labels
    predictions, gold, vads = [], [], []
    for i in range(n):
        picked = tuple(labels[j] for j in rng.choice(len(labels), 1 + i % 3, replace=False))
        gold.append(tuple(labels[j] for j in rng.choice(len(labels), 1 + i % 4, replace=False)))
        vads.append(None if i % 5 == 0 else tuple(float(v) for v in rng.integers(1, 11, 3)))
        scores = {lab: float(s) for lab, s in zip(labels, rng.random(len(labels)), strict=True)}
        extra = {"vad": [float(v) for v in rng.integers(1, 11, 3)]} if i % 2 else {}
        if i % 4:  # how the answer was read, as the parser and a judge record it
            extra["parse"] = {"cue": "list", "negated": i % 8 == 1, "n_labels": len(picked)}
            extra["judge"] = {"agrees": i % 3 == 0, "used": False} if i % 6 == 1 else None
        extra["trajectory"] = {"times": [0.0], "labels": ["x"], "probs": [[1.0]]}
        if i % 7 == 3:
            predictions.append(Prediction.failed(f"p{i:03d}", "TimeoutError: no answer"))
        elif i % 7 == 5:
            words = (*picked, "pride" if i % 2 else "awe")
            predictions.append(Prediction(f"p{i:03d}", words, status=Status.OK, extra=extra))
        else:
            predictions.append(
                Prediction(f"p{i:03d}", picked, scores=scores if i % 3 else None, extra=extra)
            )
    return predictions, gold, vads


def test_a_multi_label_store_scored_in_chunks_equals_scoring_all_rows(tmp_path: Path) -> None:
    predictions, gold, vads = _emotic_run(40)
    expected = score_predictions(gold, predictions, EMOTIC, n_bootstrap=30, seed=2, gold_vad=vads)
    with RunStore(tmp_path) as store:
        store.write("k", predictions, gold, gold_vad=vads)
        columns = ScoreColumns(EMOTIC, store.count("k"))
        for chunk, chunk_gold, chunk_vad in store.chunks("k", size=3, extras=EXTRA_KEYS):
            columns.add(chunk_gold, chunk, chunk_vad)
    metrics = columns.score(30, 2)
    assert metrics == expected
    assert {"map", "vad"} <= metrics.keys() and metrics["out_of_set_answers"] == expected[
        "out_of_set_answers"
    ]
    assert list(metrics["out_of_set_answers"]) == ["pride", "awe"]  # order of first appearance


def test_columns_refuse_more_or_fewer_rows_than_announced() -> None:
    columns = ScoreColumns(EMOTIC, 1)
    with pytest.raises(InputError, match="1 announced"):
        columns.add([("peace",)] * 2, [Prediction("a", ("peace",)), Prediction("b")])
    with pytest.raises(InputError, match="0 predictions were added, 1 announced"):
        columns.score(10, 0)


def test_code_sums_are_the_resampled_code_counts_times_the_table() -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 9, 20_000)  # 200 resamples per block
    table = rng.random((9, 4))
    sums = bootstrap_code_sums(codes, table, 700, seed=4)  # several blocks of resamples
    counts = bootstrap_code_counts(codes, 9, 700, seed=4)
    assert sums.shape == (700, 4)
    np.testing.assert_allclose(sums, counts @ table, rtol=1e-12)


def test_resamples_do_not_depend_on_how_many_are_drawn_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codes = np.random.default_rng(2).integers(0, 5, 3_000)
    at_once = bootstrap_code_counts(codes, 5, 40, seed=9)
    monkeypatch.setattr(bootstrap, "_INDICES_PER_BLOCK", 7_000)  # blocks of 2 resamples
    assert (bootstrap_code_counts(codes, 5, 40, seed=9) == at_once).all()
