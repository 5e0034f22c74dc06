"""Prior correction: exact on constructed scores with a known bias, and end to end on a real run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import accuracy_score, recall_score

from emovlm.commands.calibrate import calibrate_run, measure_prior
from emovlm.data.base import open_dataset
from emovlm.errors import InputError
from emovlm.eval.calibration import (
    batch_prior,
    calibrate_predictions,
    calibrate_scores,
    calibration_effect,
    content_free_samples,
    read_prior,
    score_matrix,
)
from emovlm.labels import get_label_space
from emovlm.recognizers.specialist import SpecialistRecognizer
from emovlm.run.runner import evaluate
from emovlm.run.store import RunStore
from emovlm.types import Prediction, Status

DFEW = get_label_space("dfew")
K = len(DFEW)
NEUTRAL = DFEW.index("neutral")


def _normalise(matrix: np.ndarray) -> np.ndarray:
    return matrix / matrix.sum(axis=1, keepdims=True)


def _with_neutral_bias(unbiased: np.ndarray, logit_offset: float) -> np.ndarray:
    """What a model answers that adds `logit_offset` to neutral's logit on every input."""
    bias = np.ones(K)
    bias[NEUTRAL] = np.exp(logit_offset)
    return _normalise(unbiased * bias)


def _balanced_scores(per_class: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased probabilities of a balanced set whose mean is uniform (rows of class c are the rows
    of class 0 with labels rotated by c) and whose argmax is the gold class: (scores, gold)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(per_class, K))
    logits[:, 0] += 3.0
    logits[:, 0] = np.maximum(logits[:, 0], logits[:, 1:].max(axis=1) + 0.1)
    rows = np.vstack([np.roll(logits, c, axis=1) for c in range(K)])
    return _normalise(np.exp(rows)), np.repeat(np.arange(K), per_class)


def _predictions(scores: np.ndarray) -> list[Prediction]:
    return [
        Prediction(
            sample_id=f"s{i}",
            labels=tuple(DFEW.labels[j] for j in np.argsort(-row, kind="stable")),
            scores=dict(zip(DFEW.labels, map(float, row), strict=True)),
            extra={
                "trajectory": {"times": [0.0], "labels": list(DFEW.labels), "probs": [list(row)]}
            },
        )
        for i, row in enumerate(scores)
    ]


def test_contextual_calibration_removes_a_constant_neutral_bias_exactly() -> None:
    unbiased = np.random.default_rng(1).dirichlet(np.ones(K), size=300)
    biased = _with_neutral_bias(unbiased, 2.0)
    # the unbiased model is indifferent to a content-free image; the biased one leans to neutral
    content_free_answer = _with_neutral_bias(np.full((1, K), 1 / K), 2.0)[0]
    calibrated, changed = calibrate_scores(biased, content_free_answer)
    assert changed.all()
    np.testing.assert_allclose(calibrated, unbiased, rtol=0, atol=1e-12)
    assert np.mean(biased.argmax(1) == NEUTRAL) > 2 * np.mean(unbiased.argmax(1) == NEUTRAL)

    predictions = calibrate_predictions(
        _predictions(biased), DFEW, content_free_answer, method="contextual"
    )
    for prediction, row, before in zip(predictions, unbiased, _predictions(biased), strict=True):
        assert prediction.labels == tuple(DFEW.labels[j] for j in np.argsort(-row, kind="stable"))
        assert prediction.extra["calibration"] == {
            "method": "contextual",
            "uncalibrated_top": before.top,
        }
        assert "trajectory" not in prediction.extra  # uncalibrated per-frame values are dropped


def test_division_by_the_prior_is_a_softmax_shift_by_the_log_prior() -> None:
    scores = np.random.default_rng(2).dirichlet(np.ones(K), size=20)
    prior = np.random.default_rng(3).dirichlet(np.ones(K))
    shifted = np.log(scores) - np.log(prior)
    softmax = np.exp(shifted - shifted.max(1, keepdims=True))
    np.testing.assert_allclose(calibrate_scores(scores, prior)[0], _normalise(softmax), atol=1e-12)


def test_batch_calibration_on_a_balanced_set_equalises_answer_shares() -> None:
    unbiased, gold = _balanced_scores()
    np.testing.assert_allclose(unbiased.mean(0), 1 / K)
    assert np.all(unbiased.argmax(1) == gold)
    biased = _with_neutral_bias(unbiased, 2.5)
    neutral_biased = np.mean(biased.argmax(1) == NEUTRAL)
    assert neutral_biased > 2 / K

    one_step = batch_prior(biased)
    np.testing.assert_allclose(one_step, biased.mean(0))
    calibrated = calibrate_scores(biased, one_step)[0]
    assert 1 / K <= np.mean(calibrated.argmax(1) == NEUTRAL) < neutral_biased

    refined = batch_prior(biased, iterations=200)
    calibrated = calibrate_scores(biased, refined)[0]
    np.testing.assert_allclose(calibrated.mean(0), 1 / K, atol=1e-9)
    np.testing.assert_allclose(calibrated, unbiased, atol=1e-8)
    assert np.all(np.bincount(calibrated.argmax(1), minlength=K) == len(gold) // K)


def test_labels_without_prior_mass_stay_at_zero_and_rows_without_scores_are_kept() -> None:
    scores = np.array([[0.5, 0.5, 0, 0, 0, 0, 0], [0, 0, 1.0, 0, 0, 0, 0]])
    prior = np.array([0.8, 0.2, 0, 0, 0, 0, 0])
    calibrated, changed = calibrate_scores(scores, prior)
    np.testing.assert_allclose(calibrated[0], [0.2, 0.8, 0, 0, 0, 0, 0])
    assert changed.tolist() == [True, False]
    np.testing.assert_array_equal(
        calibrated[1], scores[1]
    )  # all its mass sits where the prior is 0

    kept = [Prediction.failed("broken", "no face"), Prediction("text", ("happy",), raw="happy")]
    matrix, usable = score_matrix(kept, DFEW)
    assert not usable.any()
    assert calibrate_predictions(kept, DFEW, np.full(K, 1 / K), method="batch") == kept
    with pytest.raises(InputError, match="not a probability"):
        score_matrix([Prediction("x", ("happy",), scores={"happy": -0.1})], DFEW)


def test_effect_report_matches_sklearn_and_pairs_the_resamples() -> None:
    unbiased, gold_index = _balanced_scores(per_class=20)
    biased = _with_neutral_bias(unbiased, 2.5)
    gold = [(DFEW.labels[g],) for g in gold_index]
    before = _predictions(biased)
    after = calibrate_predictions(before, DFEW, batch_prior(biased, 100), method="batch")
    effect = calibration_effect(gold, before, after, DFEW, n_bootstrap=300, seed=4)

    reference_gold = [g[0] for g in gold]
    for name, answers in (("before", before), ("after", after)):
        top = [p.top for p in answers]
        recall = recall_score(reference_gold, top, labels=list(DFEW.labels), average="macro")
        assert effect[name]["uar"] == pytest.approx(recall)
        assert effect[name]["war"] == pytest.approx(accuracy_score(reference_gold, top))
    assert effect["after"]["uar"] == 1.0  # the unbiased scores' argmax is the gold class
    assert effect["before_sink"] == "neutral"
    assert effect["after"]["sink"] is None
    for key in ("uar", "war", "macro_f1", "sink_share"):
        change = effect["delta"][key]
        side = "sink_share" if key == "sink_share" else key
        assert change["value"] == pytest.approx(effect["after"][side] - effect["before"][side])
        lo, hi = change["ci"]
        assert lo <= change["value"] <= hi
    assert effect["delta"]["uar"]["ci"][0] > 0 and effect["delta"]["sink_share"]["ci"][1] < 0

    same = calibration_effect(gold, before, before, DFEW, n_bootstrap=100, seed=4)
    assert all(same["delta"][key]["ci"] == [0.0, 0.0] for key in ("uar", "war", "macro_f1"))


def test_prior_files_are_read_in_the_label_order(tmp_path: Path) -> None:
    path = tmp_path / "prior.json"
    path.write_text(json.dumps({"prior": {"neutral": 3.0, "happy": 1.0}}))
    expected = np.zeros(K)
    expected[NEUTRAL], expected[DFEW.index("happy")] = 0.75, 0.25
    np.testing.assert_allclose(read_prior(path, DFEW), expected)
    path.write_text(json.dumps({"contempt": 1.0}))
    with pytest.raises(InputError, match="contempt"):
        read_prior(path, DFEW)


PHOTOS = [
    ("astronaut", "happy"),
    ("feat-happy", "happy"),
    ("feat-surprise", "surprise"),
    ("feat-angry", "angry"),
    ("feat-single-face", "happy"),
    ("feat-disgust", "disgust"),  # Haar finds no face here: a failed row
]


@pytest.fixture(scope="module")
def specialist_run(
    tmp_path_factory: pytest.TempPathFactory, asset: Callable[[str], Path]
) -> tuple[Path, str]:
    """A run folder of the offline specialist (Haar faces) on real labelled photos."""
    base = tmp_path_factory.mktemp("calibration")
    root = base / "photos"
    for name, label in PHOTOS:
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(asset(name), root / label / f"{name}{asset(name).suffix}")
    dataset = open_dataset("folder", root, label_set="dfew")
    recognizer = SpecialistRecognizer(DFEW, faces="haar")
    summary = evaluate(
        dataset,
        recognizer,
        base / "run",
        dataset_config=dataset.config(),
        progress=False,
        n_bootstrap=50,
    )
    return base / "run", summary.config_key


def _rows(run_dir: Path, key: str) -> tuple[list[Prediction], list[tuple[str, ...]]]:
    with RunStore(run_dir, create=False) as store:
        return store.rows(key)


def test_batch_calibration_of_a_real_run_adds_a_configuration_without_touching_the_source(
    specialist_run: tuple[Path, str],
) -> None:
    run_dir, source = specialist_run
    before, gold = _rows(run_dir, source)
    assert [p.status for p in before].count(Status.FAILED) == 1

    result = calibrate_run(run_dir, method="batch", key=source, n_bootstrap=50)
    after, after_gold = _rows(run_dir, result.config_key)
    assert after_gold == gold and [p.sample_id for p in after] == [p.sample_id for p in before]
    assert _rows(run_dir, source)[0] == before
    matrix, usable = score_matrix(before, DFEW)
    expected = calibrate_scores(matrix, matrix[usable].mean(0))[0]
    for prediction, calibrated, row, ok in zip(after, expected, before, usable, strict=True):
        if not ok:
            assert prediction == row  # the failed row is kept as it was
            continue
        assert [prediction.scores[label] for label in DFEW.labels] == pytest.approx(calibrated)
        assert prediction.top == DFEW.labels[int(np.argmax(calibrated))]

    entries = yaml.safe_load((run_dir / "config.yaml").read_text())["configurations"]
    entry = next(e for e in entries if e["key"] == result.config_key)
    assert entry["calibration"]["method"] == "batch" and entry["calibration"]["of"] == source
    assert result.report_dir == run_dir / "reports" / result.config_key
    for name in ("report.md", "metrics.json", "calibration.md", "calibration.json"):
        assert (result.report_dir / name).is_file(), name
    assert "| UAR |" in (result.report_dir / "calibration.md").read_text()

    again = calibrate_run(run_dir, method="batch", key=source, n_bootstrap=50)
    assert again.config_key == result.config_key and len(_rows(run_dir, again.config_key)[0]) == 6
    with pytest.raises(InputError, match="already calibrated"):
        calibrate_run(run_dir, method="batch", key=result.config_key)


def test_contextual_prior_is_the_models_answer_to_content_free_images(
    specialist_run: tuple[Path, str], tmp_path: Path
) -> None:
    run_dir, source = specialist_run
    measured, path = measure_prior(run_dir, key=source)
    assert path == run_dir / "content-free" / f"prior-{source}.json"
    assert json.loads(path.read_text())["prior"] == measured["prior"]
    assert set(measured["inputs"]) == {"grey", "black", "white"}

    # independently: the same model looking at whole uniform images (no face to detect)
    whole_image = SpecialistRecognizer(DFEW, faces="none")
    answers = whole_image.predict(content_free_samples(tmp_path))
    expected = np.mean([[p.scores[label] for label in DFEW.labels] for p in answers], axis=0)
    assert [measured["prior"][label] for label in DFEW.labels] == pytest.approx(expected)

    prior = read_prior(path, DFEW)
    result = calibrate_run(run_dir, method="contextual", key=source, prior=prior, n_bootstrap=50)
    before, _ = _rows(run_dir, source)
    after, _ = _rows(run_dir, result.config_key)
    matrix, usable = score_matrix(before, DFEW)
    expected_rows = calibrate_scores(matrix, prior)[0]
    for prediction, row, ok in zip(after, expected_rows, usable, strict=True):
        if ok:
            assert [prediction.scores[label] for label in DFEW.labels] == pytest.approx(row)
    assert result.effect["prior"] == pytest.approx(dict(zip(DFEW.labels, prior, strict=True)))


def test_cli_calibrates_a_run_and_diagnoses_the_calibrated_rows(
    specialist_run: tuple[Path, str],
) -> None:
    run_dir, source = specialist_run
    emovlm = [sys.executable, "-m", "emovlm"]
    done = subprocess.run(
        [*emovlm, "calibrate", str(run_dir), "--method", "batch"]  # the only uncalibrated key
        + ["--iterations", "20", "--bootstrap", "50"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "UAR" in done.stdout and "WAR" in done.stdout
    entries = yaml.safe_load((run_dir / "config.yaml").read_text())["configurations"]
    new_key = next(e["key"] for e in entries if e.get("calibration", {}).get("iterations") == 20)
    assert next(e for e in entries if e["key"] == new_key)["calibration"]["of"] == source

    done = subprocess.run(
        [*emovlm, "diagnose", str(run_dir), "--key", new_key, "--bootstrap", "50"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    diagnosis = json.loads(
        (run_dir / "reports" / new_key / "diagnosis" / "longtail.json").read_text()
    )
    assert diagnosis["n"] == 6 and diagnosis["label_set"] == "dfew"
    assert diagnosis["classes_in_correlations"] == ["happy", "angry", "surprise", "disgust"]
