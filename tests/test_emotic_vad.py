"""Valence/arousal/dominance answers: parsed from model text, scored by mean absolute error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from emovlm.data.base import open_dataset
from emovlm.eval.scoring import score_predictions
from emovlm.eval.vad import parse_vad, vad_errors
from emovlm.labels import get_label_space
from emovlm.run.store import RunStore
from emovlm.types import Prediction
from openai_server import Behaviour, FakeOpenAIServer

EMOTIC = get_label_space("emotic")


def emovlm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess."""
    cmd = [sys.executable, "-m", "emovlm", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


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


PERSONS = [  # box, categories, gold VAD ("" = not annotated)
    ("[160, 40, 360, 240]", "['Happiness', 'Confidence']", "[8, 6, 7]"),
    ("[0, 0, 256, 256]", "['Peace']", "[5, 5, 5]"),
    ("[256, 256, 511, 511]", "['Happiness']", "[7, 3, 6.5]"),
    ("[100, 300, 300, 500]", "['Fatigue']", ""),
]
ANSWER = "happiness, confidence\nvalence: 7, arousal: 5, dominance: 6"


def test_eval_on_emotic_reports_vad_error_from_the_stored_gold(
    tmp_path: Path, asset: Callable[[str], Path]
) -> None:
    root = tmp_path / "emotic"
    (root / "emotic_pre").mkdir(parents=True)
    (root / "mscoco" / "images").mkdir(parents=True)
    shutil.copy(asset("astronaut"), root / "mscoco" / "images" / "astronaut.png")
    header = "Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age"
    lines = [
        f'{i},mscoco/images,astronaut.png,"[512, 512]","{box}","{cats}","{vad}",Male,Adult'
        for i, (box, cats, vad) in enumerate(PERSONS)
    ]
    (root / "emotic_pre" / "test.csv").write_text("\n".join([header, *lines]) + "\n")
    run = tmp_path / "run"
    behaviour = Behaviour(answer=lambda images, text: ANSWER)
    with FakeOpenAIServer(behaviour, lifetime=120) as server:
        done = emovlm(
            "eval", "--dataset", "emotic", "--root", root, "--run-dir", run, "--no-progress",
            "--recognizer", "vlm", "--backend", "openai", "--model", "tiny-vlm",
            "--base-url", server.url, "--vad", "--max-new-tokens", "48",
            "--cache-dir", tmp_path / "cache", "--bootstrap", "50",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    # answered (7, 5, 6) against gold (8, 6, 7), (5, 5, 5), (7, 3, 6.5); the fourth has no gold
    assert metrics["vad"]["mae"] == pytest.approx(
        {"valence": 1.0, "arousal": 1.0, "dominance": 2.5 / 3, "mean": (2 + 2.5 / 3) / 3}
    )
    assert (metrics["vad"]["n_scored"], metrics["vad"]["n_missing_gold"]) == (3, 1)
    report = (run / "report.md").read_text(encoding="utf-8")
    assert "## Valence, arousal, dominance" in report and "| dominance | 0.83 |" in report
    assert "Valence, arousal, dominance" in (run / "report.html").read_text(encoding="utf-8")

    dataset = open_dataset("emotic", root, split="test")
    gold_vad = {sample.id: sample.vad for sample in dataset.samples()}
    with RunStore(run) as store:
        rows = sorted(zip(*store.rows(store.keys()[0]), strict=True), key=lambda r: r[0].sample_id)
    predictions, gold = [p for p, _ in rows], [g for _, g in rows]
    expected = score_predictions(
        gold,
        predictions,
        EMOTIC,
        n_bootstrap=50,
        gold_vad=[gold_vad[p.sample_id] for p in predictions],
    )
    assert metrics == json.loads(json.dumps(expected))

    (run / "metrics.json").unlink()
    rebuilt = emovlm("report", run, "--bootstrap", "50")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads((run / "metrics.json").read_text(encoding="utf-8")) == metrics
