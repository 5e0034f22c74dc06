"""Metrics agree with scikit-learn (the reference) on random data: single-, multi-label, AP."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    jaccard_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)

from emovlm.eval.diagnostics import head_tail_split, kl_divergence
from emovlm.eval.multilabel import average_precision, emotic_average_precision
from emovlm.eval.scoring import score_predictions
from emovlm.labels import get_label_space
from emovlm.types import Prediction, Status

DFEW = get_label_space("dfew")
EMOTIC = get_label_space("emotic")
# Answer kinds a model can give: a label index, or one of the three non-label outcomes.
OUT_OF_SET, UNPARSED, FAILED = -1, -2, -3


def _prediction(i: int, answer: int) -> Prediction:
    if answer == FAILED:
        return Prediction.failed(str(i), "timeout")
    if answer == UNPARSED:
        return Prediction(str(i), (), raw="no idea", status=Status.UNPARSED)
    if answer == OUT_OF_SET:
        return Prediction(str(i), ("pain",), raw="Pain", status=Status.OUT_OF_SET)
    return Prediction(str(i), (DFEW.labels[answer],), raw=DFEW.labels[answer])


def _sklearn_reference(gold: list[int], answers: list[int]) -> dict:
    labels = list(range(len(DFEW)))
    present = sorted(set(gold))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, s = precision_recall_fscore_support(gold, answers, labels=labels, zero_division=0)
        return {
            "war": accuracy_score(gold, answers),
            "uar": recall_score(gold, answers, labels=present, average="macro", zero_division=0),
            "macro_precision": precision_score(
                gold, answers, labels=present, average="macro", zero_division=0
            ),
            "macro_f1": f1_score(gold, answers, labels=present, average="macro", zero_division=0),
            "precision": p,
            "recall": r,
            "f1": f,
            "support": s,
        }


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(-3, 6)),
        min_size=1,
        max_size=80,
    )
)
def test_single_label_metrics_match_sklearn(pairs: list[tuple[int, int]]) -> None:
    gold = [g for g, _ in pairs]
    answers = [a for _, a in pairs]
    predictions = [_prediction(i, a) for i, a in enumerate(answers)]
    metrics = score_predictions([(DFEW.labels[g],) for g in gold], predictions, DFEW, n_bootstrap=0)
    expected = _sklearn_reference(gold, answers)
    for key in ("war", "uar", "macro_precision", "macro_f1"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-12), key
    assert metrics["macro_recall"] == metrics["uar"]
    for i, label in enumerate(DFEW.labels):
        row = metrics["per_class"][label]
        assert row["precision"] == pytest.approx(expected["precision"][i], abs=1e-12)
        assert row["recall"] == pytest.approx(expected["recall"][i], abs=1e-12)
        assert row["f1"] == pytest.approx(expected["f1"][i], abs=1e-12)
        assert row["support"] == expected["support"][i]
    n = len(pairs)
    assert metrics["out_of_set_rate"] == pytest.approx(answers.count(OUT_OF_SET) / n)
    assert metrics["unparsed_rate"] == pytest.approx(answers.count(UNPARSED) / n)
    assert metrics["failed_rate"] == pytest.approx(answers.count(FAILED) / n)
    matrix = np.array(metrics["confusion"]["matrix"])
    assert matrix.sum() == n  # nothing dropped
    assert matrix[:, -3:].sum(axis=0).tolist() == [
        answers.count(OUT_OF_SET),
        answers.count(UNPARSED),
        answers.count(FAILED),
    ]


def test_label_without_gold_support_is_left_out_of_macro_averages() -> None:
    gold = [("happy",), ("happy",), ("sad",)]
    predictions = [Prediction(str(i), (lab,)) for i, lab in enumerate(["happy", "sad", "neutral"])]
    metrics = score_predictions(gold, predictions, DFEW, n_bootstrap=0)
    assert metrics["uar"] == pytest.approx((0.5 + 0.0) / 2)
    assert metrics["war"] == pytest.approx(1 / 3)
    assert "neutral" in metrics["classes_without_support"]
    assert metrics["per_class"]["neutral"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
    }


def test_status_decides_top1_even_when_first_entry_is_a_label() -> None:
    odd = Prediction("1", ("happy", "sad"), status=Status.UNPARSED)
    metrics = score_predictions([("happy",)], [odd], DFEW, n_bootstrap=0)
    assert metrics["war"] == 0.0
    assert metrics["unparsed_rate"] == 1.0
    assert metrics["topk"]["2"] == 0.0  # the gold label sat at position 1, which the status voids


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_top_k_follows_ranked_lists(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 40))
    gold = data.draw(st.lists(st.sampled_from(DFEW.labels), min_size=n, max_size=n))
    ranked = [data.draw(st.permutations(DFEW.labels).map(lambda p: tuple(p[:5]))) for _ in range(n)]
    predictions = [Prediction(str(i), r) for i, r in enumerate(ranked)]
    metrics = score_predictions([(g,) for g in gold], predictions, DFEW, n_bootstrap=0)
    for k in range(1, 6):
        expected = np.mean([g in r[:k] for g, r in zip(gold, ranked, strict=True)])
        assert metrics["topk"][str(k)] == pytest.approx(expected)
    assert metrics["topk"]["1"] == metrics["war"]


def _label_sets(k: int) -> st.SearchStrategy:
    return st.sets(st.integers(0, k - 1), max_size=6).map(sorted)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(_label_sets(26).filter(bool), _label_sets(26), st.sampled_from(list(Status))),
        min_size=1,
        max_size=40,
    )
)
def test_multi_label_metrics_match_sklearn(rows: list) -> None:
    k = len(EMOTIC)
    gold = np.zeros((len(rows), k), dtype=int)
    answered = np.zeros((len(rows), k), dtype=int)
    predictions = []
    for i, (g, p, status) in enumerate(rows):
        gold[i, g] = 1
        labels = tuple(EMOTIC.labels[j] for j in p)
        if status in (Status.OK, Status.OUT_OF_SET):
            answered[i, p] = 1
        predictions.append(Prediction(str(i), labels + ("pride",), status=status))
    metrics = score_predictions(
        [tuple(EMOTIC.labels[j] for j in g) for g, _, _ in rows], predictions, EMOTIC, n_bootstrap=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, _ = precision_recall_fscore_support(gold, answered, zero_division=0)
        jaccard = jaccard_score(gold, answered, average="samples", zero_division=0)
    assert metrics["macro_precision"] == pytest.approx(p.mean())
    assert metrics["macro_recall"] == pytest.approx(r.mean())
    assert metrics["macro_f1"] == pytest.approx(f.mean())
    assert metrics["hamming"] == pytest.approx(hamming_loss(gold, answered))
    assert metrics["subset_accuracy"] == pytest.approx(accuracy_score(gold, answered))
    assert metrics["jaccard"] == pytest.approx(jaccard)
    assert metrics["out_of_set_answers"].get("pride", 0) == sum(
        status in (Status.OK, Status.OUT_OF_SET) for _, _, status in rows
    )


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0])),
        min_size=1,
        max_size=60,
    )
)
def test_average_precision_matches_sklearn_with_ties(pairs: list[tuple[bool, float]]) -> None:
    gold = np.array([g for g, _ in pairs])
    scores = np.array([s for _, s in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = average_precision_score(gold, scores) if gold.any() else 0.0
    assert average_precision(gold, scores) == pytest.approx(expected)


def _emotic_ap_by_rank(gold: np.ndarray, scores: np.ndarray) -> float:
    """The EMOTIC authors' loop written out plainly: every rank, 11 recall levels."""
    order = np.argsort(-scores)
    tp = np.cumsum(gold[order])
    fp = np.cumsum(~gold[order])
    recall = tp / gold.sum()
    precision = tp / (tp + fp)
    total = 0.0
    for level in [i / 10 for i in range(11)]:
        reached = precision[recall >= level]
        total += reached.max() if reached.size else 0.0
    return total / 11


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.booleans(), min_size=1, max_size=60).filter(any),
    st.randoms(use_true_random=False),
)
def test_emotic_ap_matches_rank_by_rank_definition(gold: list[bool], random) -> None:
    scores = np.array(random.sample(range(10_000), len(gold)), dtype=float)  # no ties
    gold_array = np.array(gold)
    assert emotic_average_precision(gold_array, scores) == pytest.approx(
        _emotic_ap_by_rank(gold_array, scores)
    )


def test_the_two_ap_definitions_on_a_worked_example() -> None:
    gold = np.array([1, 0, 1, 0], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    # precision/recall at each rank: (1, .5), (.5, .5), (2/3, 1), (.5, 1)
    assert average_precision(gold, scores) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert emotic_average_precision(gold, scores) == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    assert average_precision(np.zeros(3, bool), scores[:3]) == 0.0
    assert emotic_average_precision(np.zeros(3, bool), scores[:3]) == 0.0


def test_mean_average_precision_from_prediction_scores_matches_sklearn() -> None:
    rng = np.random.default_rng(7)
    n, k = 120, len(EMOTIC)
    gold = rng.random((n, k)) < 0.15
    gold[np.arange(n), rng.integers(0, k, n)] = True
    scores = np.round(rng.random((n, k)) * 0.6 + 0.4 * gold, 2)
    predictions = [
        Prediction(
            str(i),
            tuple(lab for j, lab in enumerate(EMOTIC.labels) if scores[i, j] > 0.5),
            scores=dict(zip(EMOTIC.labels, scores[i].tolist(), strict=True)),
        )
        for i in range(n)
    ]
    gold_sets = [tuple(lab for j, lab in enumerate(EMOTIC.labels) if gold[i, j]) for i in range(n)]
    metrics = score_predictions(gold_sets, predictions, EMOTIC, n_bootstrap=0)
    assert metrics["map"] == pytest.approx(average_precision_score(gold, scores, average="macro"))
    per_class = [emotic_average_precision(gold[:, j], scores[:, j]) for j in range(k)]
    assert metrics["map_emotic"] == pytest.approx(np.mean(per_class))
    assert "11-point" in metrics["map_definition"]
    assert metrics["per_class"]["anger"]["ap"] == pytest.approx(
        average_precision_score(gold[:, 1], scores[:, 1])
    )


def test_kl_divergence_is_zero_for_matching_marginals_and_grows_with_collapse() -> None:
    gold = np.array([50, 30, 20])
    assert kl_divergence(gold, gold) == pytest.approx(0.0)
    mild = kl_divergence(np.array([60, 25, 15]), gold)
    collapsed = kl_divergence(np.array([100, 0, 0]), gold)
    assert 0 < mild < collapsed < np.inf
    p = (np.array([100, 0, 0]) + 0.5) / 101.5
    q = (gold + 0.5) / 101.5
    assert collapsed == pytest.approx(np.sum(p * np.log(p / q)))


def test_head_tail_split_covers_half_of_samples_with_most_frequent_classes() -> None:
    head, tail = head_tail_split(np.array([10, 40, 0, 30, 20]))
    assert head.tolist() == [1, 3]  # 40 + 30 = 70% ≥ 50%; 40 alone is 40%
    assert tail.tolist() == [0, 4]  # the class without samples is in neither
    head, tail = head_tail_split(np.array([5]))
    assert head.tolist() == [0] and tail.tolist() == []


def test_sink_names_the_most_over_predicted_label_and_what_it_absorbed() -> None:
    gold = ["happy"] * 4 + ["sad"] * 4 + ["neutral"] * 2
    answers = ["happy", "neutral", "neutral", "happy", "sad", "neutral", "sad", "sad"] + [
        "neutral",
        "neutral",
    ]
    predictions = [Prediction(str(i), (a,)) for i, a in enumerate(answers)]
    metrics = score_predictions([(g,) for g in gold], predictions, DFEW, n_bootstrap=0)
    sink = metrics["sink"]
    assert sink["label"] == "neutral"
    assert sink["predicted_share"] == pytest.approx(0.5)
    assert sink["gold_share"] == pytest.approx(0.2)
    assert sink["absorbed"] == 3
    assert sink["absorbed_share"] == pytest.approx(3 / 8)
    assert sink["absorbed_from"] == {"happy": 2, "sad": 1}
    perfect = score_predictions(
        [(g,) for g in gold],
        [Prediction(str(i), (g,)) for i, g in enumerate(gold)],
        DFEW,
        n_bootstrap=0,
    )
    assert perfect["sink"] is None
    assert perfect["kl_pred_gold"] == pytest.approx(0.0)
