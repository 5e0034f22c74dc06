"""Valence/arousal/dominance answers: parsed from model text, scored by mean absolute error."""

from __future__ import annotations

import pytest

from emovlm.eval.scoring import score_predictions
from emovlm.eval.vad import parse_vad, vad_errors
from emovlm.labels import get_label_space
from emovlm.types import Prediction

EMOTIC = get_label_space("emotic")


@pytest.mark.parametrize(
    ("text", "vad", "rest"),
    [
        (
            "happiness, peace\nvalence: 8, arousal: 3, dominance: 6",
            (8.0, 3.0, 6.0),
            "happiness, peace",
        ),
        ("Excitement. Valence=7.5; Arousal=9; Dominance=5", (7.5, 9.0, 5.0), "Excitement."),
        ("dominance is 4/10, valence is 2/10, arousal is 6/10", (2.0, 6.0, 4.0), ""),
        ("sadness\nvalence: 3, arousal: 4", None, "sadness"),  # a dimension is missing
        ("fear\nvalence: 0, arousal: 4, dominance: 11", None, "fear"),  # outside 1-10
        ("just happiness", None, "just happiness"),
    ],
)
def test_ratings_are_read_and_cut_from_the_text(
    text: str, vad: tuple[float, float, float] | None, rest: str
) -> None:
    assert parse_vad(text) == (vad, rest)


def test_cutting_the_ratings_keeps_them_out_of_the_labels() -> None:
    _, rest = parse_vad("happiness, peace\nvalence: 8, arousal: 3, dominance: 6")
    parsed = EMOTIC.parse(rest)
    assert parsed.labels == ("happiness", "peace")


def test_mae_per_dimension_over_samples_with_gold_and_answer() -> None:
    gold = [(5.0, 5.0, 5.0), (8.0, 2.0, 6.0), None, (4.0, 4.0, 4.0)]
    answers = [(6.0, 5.0, 3.0), (8.0, 4.0, 6.0), (1.0, 1.0, 1.0), None]
    result = vad_errors(gold, answers)
    assert result["mae"] == pytest.approx(
        {"valence": 0.5, "arousal": 1.0, "dominance": 1.0, "mean": 2.5 / 3}
    )
    assert (result["n_scored"], result["n_missing_answer"], result["n_missing_gold"]) == (2, 1, 1)
    assert vad_errors([None], [None])["mae"]["mean"] is None


def test_scoring_adds_vad_when_predictions_carry_it() -> None:
    predictions = [
        Prediction(
            "a", labels=("peace",), extra={"vad": [7.0, 2.0, 6.0]}
        ),  # as read back from JSON
        Prediction("b", labels=("anger",), extra={"vad": None}),
    ]
    gold = [("peace",), ("fear",)]
    metrics = score_predictions(
        gold, predictions, EMOTIC, n_bootstrap=0, gold_vad=[(6.0, 3.0, 6.0), (2.0, 8.0, 3.0)]
    )
    assert metrics["vad"]["mae"]["valence"] == 1.0 and metrics["vad"]["n_missing_answer"] == 1
    assert "vad" not in score_predictions(gold, predictions[1:] * 2, EMOTIC, n_bootstrap=0)
