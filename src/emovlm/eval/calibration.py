"""Prior correction at inference, no training: contextual and batch calibration of label scores.

A recognizer's label probabilities p(y|x) carry a prior that the model brings to every input (a
pull towards "neutral", say). Both methods divide an estimate of that prior out and renormalise,

    q(y|x) = (p(y|x) / prior(y)) / sum over y' of (p(y'|x) / prior(y')),

which equals subtracting log prior(y) from log p(y|x) before a softmax. Contextual calibration
(Zhao et al. 2021) measures the prior as the model's answer to content-free inputs (uniform grey,
black and white images: no face, no expression); batch calibration (Zhou et al. 2024) estimates it
as the mean predicted distribution over the run's own samples. Both apply to stored scores, so the
model is never asked about the evaluation samples again. See docs/diagnosis.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emovlm.errors import InputError
from emovlm.eval.bootstrap import percentile_intervals
from emovlm.eval.outcomes import label_indicators, resampled_class_scores
from emovlm.eval.scoring import score_predictions
from emovlm.labels import LabelSpace
from emovlm.types import Prediction, Sample, Status

if TYPE_CHECKING:
    from emovlm.protocols import Recognizer

METHODS = ("contextual", "batch")
"""Calibration methods: prior from content-free inputs, or from the run's own scores."""

CONTENT_FREE_KINDS = {"grey": 128, "black": 0, "white": 255}
"""Content-free images by name and their uniform pixel value (RGB)."""

CONTENT_FREE_SIZE = 224
"""Side in pixels of the content-free images."""

CI_LEVEL = 0.95
_CONVERGED = 1e-9


def score_matrix(
    predictions: Sequence[Prediction], space: LabelSpace
) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) label probabilities, each usable row normalised to 1, and the mask of usable rows.

    A row is usable when its prediction did not fail and has scores with some mass; labels missing
    from a prediction's scores count as 0. Negative or non-finite scores are refused.
    """
    matrix = np.zeros((len(predictions), len(space)))
    for i, prediction in enumerate(predictions):
        if prediction.scores is None or Status(prediction.status) is Status.FAILED:
            continue
        for label, value in prediction.scores.items():
            if label not in space:
                continue
            if not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
                raise InputError(
                    f"sample {prediction.sample_id}: score {value!r} for {label!r} is not a "
                    "probability; calibration needs non-negative label probabilities"
                )
            matrix[i, space.index(label)] = value
    totals = matrix.sum(axis=1)
    usable = totals > 0
    matrix[usable] /= totals[usable, None]
    return matrix, usable


def calibrate_scores(matrix: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated rows, mask of rows changed): each row divided by `prior` and renormalised.

    A label whose prior is 0 keeps probability 0. A row left without mass (all of it on labels
    whose prior is 0) keeps its uncalibrated probabilities and is marked unchanged.
    """
    prior = np.asarray(prior, dtype=float)
    ratio = np.divide(matrix, prior, out=np.zeros_like(matrix, dtype=float), where=prior > 0)
    totals = ratio.sum(axis=1, keepdims=True)
    changed = totals[:, 0] > 0
    calibrated = np.where(changed[:, None], ratio / np.where(totals > 0, totals, 1.0), matrix)
    return calibrated, changed


def batch_prior(matrix: np.ndarray, iterations: int = 1) -> np.ndarray:
    """The prior of batch calibration: the mean predicted distribution over the rows.

    With `iterations` > 1 the prior is refined until the calibrated rows' mean is uniform over the
    labels the model ever gives mass to (a Sinkhorn-style fixed point; it stops early on reaching
    it): the right prior when the evaluation set is balanced.
    """
    if iterations < 1:
        raise InputError(f"iterations must be at least 1, not {iterations}")
    if not len(matrix):
        raise InputError("batch calibration needs at least one row of label scores")
    prior = matrix.mean(axis=0)
    active = prior > 0
    for _ in range(iterations - 1):
        mean = calibrate_scores(matrix, prior)[0].mean(axis=0)
        if np.abs(mean[active] - 1.0 / active.sum()).max() < _CONVERGED:
            break
        prior = prior * mean * active.sum()
        prior = prior / prior.sum()
    return prior


def prior_vector(prior: Mapping[str, float], space: LabelSpace) -> np.ndarray:
    """A label → probability mapping as a normalised vector in the space's order (missing: 0)."""
    unknown = [label for label in prior if label not in space]
    if unknown:
        raise InputError(
            f"prior names label(s) {', '.join(map(repr, unknown))} outside label set "
            f"{space.name!r} ({', '.join(space.labels)})"
        )
    values = [prior.get(label, 0.0) for label in space.labels]
    vector = np.array([v if isinstance(v, int | float) else np.nan for v in values], dtype=float)
    if not np.all(np.isfinite(vector)) or np.any(vector < 0) or vector.sum() <= 0:
        raise InputError("a prior must give non-negative probabilities with a positive sum")
    return vector / vector.sum()


def read_prior(path: Path, space: LabelSpace) -> np.ndarray:
    """A prior from a JSON file: {"prior": {label: p}} (as written by emovlm) or {label: p}."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"prior file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"prior file {path} is not valid JSON ({exc.msg})") from None
    prior = document.get("prior", document) if isinstance(document, dict) else None
    if not isinstance(prior, dict):
        raise InputError(f'{path}: expected {{"prior": {{label: probability, ...}}}}')
    return prior_vector(prior, space)


def calibrate_predictions(
    predictions: Sequence[Prediction], space: LabelSpace, prior: np.ndarray, *, method: str
) -> list[Prediction]:
    """Predictions re-ranked by calibrated scores; rows without usable scores are kept as they are.

    A calibrated prediction keeps its raw answer and cost, drops the per-frame trajectory (those
    are uncalibrated probabilities) and records the method and the uncalibrated top answer in
    `extra["calibration"]`.
    """
    if space.multi_label:
        raise InputError(
            f"label set {space.name!r} is multi-label; prior correction is defined here for "
            "single-label scores that sum to 1"
        )
    matrix, usable = score_matrix(predictions, space)
    calibrated, changed = calibrate_scores(matrix, prior)
    result = []
    for i, prediction in enumerate(predictions):
        if not (usable[i] and changed[i]):
            result.append(prediction)
            continue
        order = np.argsort(-calibrated[i], kind="stable")
        extra = {key: value for key, value in prediction.extra.items() if key != "trajectory"}
        extra["calibration"] = {"method": method, "uncalibrated_top": prediction.top}
        result.append(
            replace(
                prediction,
                labels=tuple(space.labels[j] for j in order),
                scores={label: float(calibrated[i, j]) for j, label in enumerate(space.labels)},
                status=Status.OK,
                reason="",
                extra=extra,
            )
        )
    return result


def content_free_samples(
    folder: Path, kinds: Sequence[str] = tuple(CONTENT_FREE_KINDS)
) -> list[Sample]:
    """Write one uniform image per kind (grey, black, white) into `folder`; samples without gold."""
    from PIL import Image

    unknown = [kind for kind in kinds if kind not in CONTENT_FREE_KINDS]
    if unknown or not kinds:
        raise InputError(
            f"unknown content-free input(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(CONTENT_FREE_KINDS)}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for kind in kinds:
        path = folder / f"content-free-{kind}.png"
        value = CONTENT_FREE_KINDS[kind]
        Image.new("RGB", (CONTENT_FREE_SIZE, CONTENT_FREE_SIZE), (value, value, value)).save(path)
        samples.append(Sample(id=f"content-free-{kind}", media=path))
    return samples


def content_free_prior(
    recognizer: Recognizer, folder: Path, kinds: Sequence[str] = tuple(CONTENT_FREE_KINDS)
) -> dict[str, Any]:
    """The recognizer's label prior: its mean label probabilities on content-free images.

    Returns {"prior": {label: p}, "inputs": {kind: {label: p}}, "recognizer": name}; raises when the
    recognizer gives no scores for them (it must answer with label scores, and see the whole image:
    a face detector finds no face in a content-free image).
    """
    samples = content_free_samples(folder, kinds)
    predictions = recognizer.predict(samples)
    space = recognizer.label_space
    matrix, usable = score_matrix(predictions, space)
    if not usable.all():
        reasons = "; ".join(
            f"{p.sample_id}: {p.reason or 'no label scores'}"
            for p, ok in zip(predictions, usable, strict=True)
            if not ok
        )
        raise InputError(
            f"recognizer {recognizer.name!r} gave no label scores for content-free inputs "
            f"({reasons}); use a recognizer that scores labels (vlm --mode score, specialist) "
            "and sees the whole image (--faces none)"
        )
    prior = matrix.mean(axis=0)
    return {
        "recognizer": recognizer.name,
        "prior": dict(zip(space.labels, map(float, prior), strict=True)),
        "inputs": {
            kind: dict(zip(space.labels, map(float, row), strict=True))
            for kind, row in zip(kinds, matrix, strict=True)
        },
    }


def calibration_effect(
    gold: Sequence[Sequence[str]],
    before: Sequence[Prediction],
    after: Sequence[Prediction],
    space: LabelSpace,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """UAR, WAR, macro F1, KL and the sink before and after calibration, with paired Δ intervals.

    Both answer sets are scored on the same bootstrap resamples (same seed, same samples), so the
    interval of each difference is paired. `sink_share` follows the label that was the sink before.
    """
    scored = {
        name: score_predictions(gold, answers, space, n_bootstrap=n_bootstrap, seed=seed)
        for name, answers in (("before", before), ("after", after))
    }
    sink = (scored["before"].get("sink") or {}).get("label")
    sides = {
        name: {
            "uar": m["uar"],
            "war": m["war"],
            "macro_f1": m["macro_f1"],
            "kl_pred_gold": m["kl_pred_gold"],
            "sink": m.get("sink"),
            "sink_share": None if sink is None else m["predicted_share"][sink],
            "predicted_share": m["predicted_share"],
            "ci": {k: m["ci"][k] for k in ("uar", "war", "macro_f1") if k in m["ci"]},
        }
        for name, m in scored.items()
    }
    delta = {
        key: {"value": sides["after"][key] - sides["before"][key], "ci": None}
        for key in ("uar", "war", "macro_f1")
    }
    if sink is not None:
        delta["sink_share"] = {
            "value": sides["after"]["sink_share"] - sides["before"]["sink_share"],
            "ci": None,
        }
    if n_bootstrap:
        _add_paired_intervals(delta, gold, before, after, space, sink, n_bootstrap, seed)
    return {
        "n": len(before),
        "n_changed_top": sum(a.top != b.top for a, b in zip(after, before, strict=True)),
        "before_sink": sink,
        "gold_share": scored["before"]["gold_share"],
        "before": sides["before"],
        "after": sides["after"],
        "delta": delta,
        "ci_level": CI_LEVEL,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
    }


def _add_paired_intervals(
    delta: dict[str, dict[str, Any]],
    gold: Sequence[Sequence[str]],
    before: Sequence[Prediction],
    after: Sequence[Prediction],
    space: LabelSpace,
    sink: str | None,
    n_bootstrap: int,
    seed: int,
) -> None:
    """Fill each Δ's interval from the same resamples of the samples for both answer sets."""
    resampled = {}
    for name, answers in (("before", before), ("after", after)):
        gold_matrix, answered = label_indicators(gold, answers, space)
        resampled[name] = resampled_class_scores(gold_matrix, answered, n_bootstrap, seed)
    differences = {
        key: resampled["after"][key] - resampled["before"][key]
        for key in ("uar", "war", "macro_f1")
    }
    if sink is not None:
        j = space.index(sink)
        shares = {name: r["predicted"][:, j] / len(before) for name, r in resampled.items()}
        differences["sink_share"] = shares["after"] - shares["before"]
    for key, interval in percentile_intervals(differences, CI_LEVEL).items():
        delta[key]["ci"] = interval
