"""The offline specialist recognizer on real faces, real videos and broken files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from emovlm.errors import InputError
from emovlm.labels import get_label_space
from emovlm.recognizers.aggregate import expressive_peak, mean_over_frames
from emovlm.recognizers.specialist import SpecialistRecognizer, class_map
from emovlm.types import Sample, Status

FER2013 = get_label_space("fer2013")


@pytest.fixture(scope="module")
def recognizer() -> SpecialistRecognizer:
    return SpecialistRecognizer(get_label_space("dfew"))


def test_smiling_astronaut_is_happy(
    recognizer: SpecialistRecognizer, asset: Callable[[str], Path]
) -> None:
    (pred,) = recognizer.predict([Sample("astronaut", asset("astronaut"))])
    assert pred.status is Status.OK
    assert pred.top == "happy"
    assert sum(pred.scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert list(pred.labels) == sorted(pred.scores, key=pred.scores.get, reverse=True)
    assert len(pred.frames) == 1 and pred.frames.main.all()  # a still image: one frame


def test_video_keeps_a_per_frame_trajectory(
    recognizer: SpecialistRecognizer, asset: Callable[[str], Path]
) -> None:
    (pred,) = recognizer.predict([Sample("clip", asset("feat-video-single-face"))])
    frames = pred.frames
    assert pred.extra["frames_sampled"] == 72 and pred.extra["frames_with_face"] == 72
    assert np.all(np.diff(frames.time) > 0) and np.array_equal(frames.index, np.arange(72))
    probs = frames.probs
    assert probs.shape == (72, 7) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    assert frames.main.all() and (frames.track == 0).all()
    happy = probs[:, list(frames.labels).index("happy")]
    assert happy[30:50].mean() > happy[:10].mean() + 0.3  # the smile is in the middle of the clip
    assert pred.top == "happy"


def test_bad_media_fail_alone_with_a_reason(
    recognizer: SpecialistRecognizer, asset: Callable[[str], Path], tmp_path: Path
) -> None:
    empty = tmp_path / "empty clip.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    batch = [
        Sample("empty", empty),
        Sample("astronaut", asset("astronaut")),
        Sample("text", text),
        Sample("mountain", asset("feat-no-face")),
    ]
    preds = recognizer.predict(batch)
    assert [p.sample_id for p in preds] == ["empty", "astronaut", "text", "mountain"]
    assert [p.status for p in preds] == [Status.FAILED, Status.OK, Status.FAILED, Status.FAILED]
    assert "empty clip.mp4" in preds[0].reason
    assert "notes.mp4" in preds[2].reason
    assert "no face found" in preds[3].reason and "--faces none" in preds[3].reason


def test_batched_answers_equal_one_by_one(
    recognizer: SpecialistRecognizer, asset: Callable[[str], Path]
) -> None:
    samples = [Sample(n, asset(n)) for n in ("feat-happy", "feat-surprise", "feat-angry")]
    together = recognizer.predict(samples)
    alone = [recognizer.predict([s])[0] for s in samples]
    for a, b in zip(together, alone, strict=True):
        assert a.labels == b.labels
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_mafw_labels_the_model_cannot_output_are_listed_and_get_zero(
    asset: Callable[[str], Path],
) -> None:
    mafw = SpecialistRecognizer(get_label_space("mafw"), faces="haar")
    assert set(mafw.config()["unreachable_labels"]) == {
        "contempt",
        "anxiety",
        "helplessness",
        "disappointment",
    }
    (pred,) = mafw.predict([Sample("astronaut", asset("astronaut"))])
    assert pred.top == "happiness"
    assert pred.scores["contempt"] == 0.0


def test_class_map_follows_label_synonyms() -> None:
    emotic = get_label_space("emotic")
    matrix = class_map(FER2013.labels, emotic)
    sent = {FER2013.labels[i]: emotic.labels[j] for i, j in zip(*np.nonzero(matrix), strict=True)}
    assert sent == {
        "angry": "anger",
        "fear": "fear",
        "happy": "happiness",
        "sad": "sadness",
        "surprise": "surprise",
    }


def test_peak_aggregation_keeps_a_brief_expression_that_the_mean_dilutes() -> None:
    neutral, happy = FER2013.index("neutral"), FER2013.index("happy")
    probs = np.full((40, 7), 0.01)
    probs[:, neutral] = 0.94
    probs[18:24] = 0.01  # a quarter-second smile at 25 fps in a neutral clip
    probs[18:24, happy] = 0.94
    assert np.argmax(mean_over_frames(probs, FER2013)) == neutral
    assert np.argmax(expressive_peak(probs, FER2013)) == happy


def test_bad_settings_are_refused_up_front() -> None:
    with pytest.raises(InputError, match="aggregate"):
        SpecialistRecognizer(FER2013, aggregate="median")
    with pytest.raises(InputError, match="face-step"):
        SpecialistRecognizer(FER2013, face_step=0)


@pytest.mark.parametrize(("preset", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_emovlm_makes_torch_threads_wait_passively_unless_told(
    preset: str | None, expected: str
) -> None:
    """torch reads OMP_WAIT_POLICY when it loads: emovlm sets it first, keeping a user's value."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset is not None:
        env["OMP_WAIT_POLICY"] = preset
    code = "import os, emovlm; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == expected


def test_grey_crops_from_the_luma_plane_give_the_rgb_crops_answers(
    recognizer: SpecialistRecognizer,
    asset: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fer-xception reads grey, so its crops come from the luma plane with no RGB made; a
    real clip's per-frame probabilities stay within 0.05 of the RGB crops', its clip scores
    within 0.01, and the ranking holds."""
    sample = [Sample("clip", asset("feat-video-pexels"))]
    (grey,) = recognizer.predict(sample)
    monkeypatch.setattr(type(recognizer.model), "reads_grey", False)
    (rgb,) = recognizer.predict(sample)
    assert grey.labels == rgb.labels
    assert np.array_equal(grey.frames.index, rgb.frames.index)
    assert np.abs(grey.frames.probs - rgb.frames.probs).max() < 0.05
    assert max(abs(grey.scores[k] - rgb.scores[k]) for k in rgb.scores) < 0.01


def test_a_pass_leaves_torch_threads_as_it_found_them(
    recognizer: SpecialistRecognizer, asset: Callable[[str], Path]
) -> None:
    """Stages overlap on one torch thread each during a pass; the caller's count comes back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        recognizer.predict([Sample("clip", asset("feat-video-single-face"))])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_an_error_of_the_model_reaches_the_caller(
    asset: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The expression model runs on a worker thread; what it raises is raised to the caller."""
    broken = SpecialistRecognizer(FER2013)

    def fail(faces: object) -> np.ndarray:
        raise RuntimeError("out of memory in the expression model")

    monkeypatch.setattr(broken.model, "predict_proba", fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        broken.predict([Sample("clip", asset("feat-video-single-face"))])


def test_a_videos_thumbnails_spread_over_it_and_only_they_are_made(
    recognizer: SpecialistRecognizer, asset: Callable[[str], Path]
) -> None:
    """Four thumbnails of the main face, evenly over the clip: at the first frame with a face at
    or after each of four evenly spaced sampled frames."""
    (pred,) = recognizer.predict([Sample("clip", asset("feat-video-pexels"))])
    times = [float(t["caption"].split()[2]) for t in pred.extra["thumbnails"]]
    duration = float(pred.frames.time[-1])
    assert len(times) == 4 and times[0] == 0.0 and times == sorted(times)
    assert times[-1] == pytest.approx(duration, abs=0.05)
    assert times[1] == pytest.approx(duration / 3, abs=0.1)


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (3, 1), (16, 14)])
def test_decoding_gets_the_cores_the_pass_leaves(
    cores: int, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tracking and the model each keep a core busy; decoding gets the rest of the process's."""
    from emovlm.recognizers import specialist

    monkeypatch.setattr(specialist.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert specialist.decode_threads() == threads
