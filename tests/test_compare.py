"""Paired bootstrap differences between configurations scored on the same samples."""

from __future__ import annotations

import numpy as np
import pytest

from emovlm.errors import InputError
from emovlm.eval.compare import paired_comparison
from emovlm.eval.scoring import score_predictions
from emovlm.labels import get_label_space
from emovlm.types import Prediction, Status

DFEW = get_label_space("dfew")
RNG = np.random.default_rng(7)
N = 300
GOLD = [(DFEW.labels[i % 7],) for i in range(N)]


def answering(correct: np.ndarray) -> list[Prediction]:
    """Predictions that are right where `correct` is true, else 'neutral' (or 'happy' for neutral)."""
    predictions = []
    for i, ok in enumerate(correct):
        gold = GOLD[i][0]
        wrong = "happy" if gold == "neutral" else "neutral"
        predictions.append(Prediction(str(i), labels=(gold if ok else wrong,)))
    return predictions


BASE = RNG.random(N) < 0.5
BETTER = BASE | (RNG.random(N) < 0.3)


def test_each_configuration_matches_the_scorer_and_differences_are_paired() -> None:
    runs = {"base": (answering(BASE), GOLD), "better": (answering(BETTER), GOLD)}
    result = paired_comparison(runs, DFEW, "base", n_bootstrap=500, seed=3)
    for name, (predictions, gold) in runs.items():
        scored = score_predictions(gold, predictions, DFEW, n_bootstrap=500, seed=3)
        for metric in ("macro_f1", "uar", "war"):
            assert result["settings"][name]["metrics"][metric] == pytest.approx(scored[metric])
            assert result["settings"][name]["ci"][metric] == pytest.approx(scored["ci"][metric])
    diff = result["differences"]["better"]["war"]
    base_war = result["settings"]["base"]["metrics"]["war"]
    assert diff["diff"] == pytest.approx(result["settings"]["better"]["metrics"]["war"] - base_war)
    low, high = diff["ci"]
    assert 0 < low < diff["diff"] < high and diff["p"] < 0.01
    # Paired: the difference's interval is narrower than the two intervals' combined widths.
    widths = [np.diff(result["settings"][s]["ci"]["war"])[0] for s in runs]
    assert high - low < 0.75 * sum(widths)
    assert "base" not in result["differences"] and result["n"] == N


def test_identical_configurations_differ_by_exactly_zero() -> None:
    runs = {"a": (answering(BASE), GOLD), "b": (answering(BASE), GOLD)}
    diff = paired_comparison(runs, DFEW, "a", n_bootstrap=200)["differences"]["b"]["macro_f1"]
    assert diff == {"diff": 0.0, "ci": [0.0, 0.0], "p": 1.0}


def test_only_samples_every_configuration_has_are_compared_and_failures_count_as_wrong() -> None:
    full = answering(np.ones(N, dtype=bool))
    partial = [
        Prediction.failed(p.sample_id, "server down") if i < 10 else p
        for i, p in enumerate(full[: N - 50])
    ]
    runs = {"full": (full, GOLD), "partial": (partial, GOLD[: N - 50])}
    result = paired_comparison(runs, DFEW, "full", n_bootstrap=0)
    assert result["n"] == N - 50
    assert result["settings"]["partial"]["n_rows"] == N - 50
    assert result["settings"]["partial"]["metrics"]["war"] == pytest.approx(1 - 10 / (N - 50))
    assert (
        result["settings"]["full"]["ci"] == {}
        and result["differences"]["partial"]["war"]["ci"] is None
    )


def test_mismatched_gold_unknown_reference_and_multi_label_are_refused() -> None:
    predictions = answering(BASE)
    other_gold = [("sad",)] + GOLD[1:]
    with pytest.raises(InputError, match="has gold"):
        paired_comparison({"a": (predictions, GOLD), "b": (predictions, other_gold)}, DFEW, "a")
    with pytest.raises(InputError, match="reference 'c'"):
        paired_comparison({"a": (predictions, GOLD)}, DFEW, "c")
    with pytest.raises(InputError, match="multi-label"):
        paired_comparison({"a": (predictions, GOLD)}, get_label_space("emotic"), "a")
    with pytest.raises(InputError, match="share no"):
        paired_comparison(
            {"a": (predictions[:1], GOLD[:1]), "b": (predictions[1:2], GOLD[1:2])}, DFEW, "a"
        )


def test_out_of_set_answers_are_wrong_not_dropped() -> None:
    predictions = [
        Prediction(p.sample_id, labels=("pain",), status=Status.OUT_OF_SET) if i % 2 else p
        for i, p in enumerate(answering(np.ones(N, dtype=bool)))
    ]
    result = paired_comparison({"a": (predictions, GOLD)}, DFEW, "a", n_bootstrap=0)
    assert result["settings"]["a"]["metrics"]["war"] == pytest.approx(0.5)
