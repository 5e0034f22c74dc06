"""MSCE stage 1: the specialist describer's sentences on constructed trajectories and a real video."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from emovlm.labels import get_label_space
from emovlm.recognizers.describers import (
    NO_FACE,
    ClipWindows,
    SpecialistDescriber,
    TrajectoryWording,
    Window,
    describe_trajectory,
    running_median,
)
from emovlm.types import Sample

FPS = 25
LABELS = ("happy", "neutral", "surprise")


def trajectory(**curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times at 25 fps and (T, 3) probabilities over LABELS; labels not given share the rest."""
    length = len(next(iter(curves.values())))
    given = {name: np.asarray(curve, dtype=float) for name, curve in curves.items()}
    missing = [name for name in LABELS if name not in given]
    rest = (1.0 - sum(given.values())) / max(1, len(missing))
    probs = np.stack([given.get(name, rest) for name in LABELS], axis=1)
    return np.arange(length) / FPS, probs


def ramp(length: int, start: float, end: float, begin: int, stop: int) -> np.ndarray:
    """`start` until frame `begin`, a straight line to `end` at frame `stop`, then `end`."""
    curve = np.full(length, start)
    curve[begin:stop] = np.linspace(start, end, stop - begin, endpoint=False)
    curve[stop:] = end
    return curve


def test_a_still_face_is_worded_as_steady_with_its_main_expression() -> None:
    times, probs = trajectory(neutral=np.full(50, 0.8), happy=np.full(50, 0.1))
    assert (
        describe_trajectory(times, probs, LABELS, 0.0, 2.0)
        == "the expression stays steady, mostly neutral (0.80)."
    )


def test_a_rise_and_a_fall_are_worded_from_what_to_what_largest_first() -> None:
    happy = ramp(50, 0.10, 0.85, 12, 25)
    neutral = ramp(50, 0.80, 0.10, 12, 25)
    times, probs = trajectory(happy=happy, neutral=neutral)
    assert (
        describe_trajectory(times, probs, LABELS, 0.0, 1.96)
        == "happiness rises from 0.10 to 0.85 and neutral falls from 0.80 to 0.10."
    )
    # Only the window's own frames count: before the rise nothing moves.
    assert describe_trajectory(times, probs, LABELS, 0.0, 0.4) == (
        "the expression stays steady, mostly neutral (0.80)."
    )


def test_a_brief_spike_of_micro_expression_length_is_flagged_with_width_and_peak() -> None:
    surprise = np.full(50, 0.05)
    surprise[26:35] = [0.2, 0.45, 0.7, 0.7, 0.7, 0.7, 0.7, 0.45, 0.2]
    times, probs = trajectory(surprise=surprise, happy=np.full(50, 0.05))
    assert (
        describe_trajectory(times, probs, LABELS, 0.0, 1.96)
        == "a brief surprise spike (0.28 s) peaks at 1.12 s (0.70)."
    )


def test_a_long_rise_and_fall_names_the_peak_time() -> None:
    happy = np.full(75, 0.1)
    happy[10:60] = np.concatenate(
        [np.linspace(0.1, 0.9, 10), np.full(30, 0.9), np.linspace(0.9, 0.1, 10)]
    )
    times, probs = trajectory(happy=happy, surprise=np.full(75, 0.05))
    assert (
        describe_trajectory(times, probs, LABELS, 0.0, 2.96)
        == "happiness rises from 0.10 to 0.90 at 0.76 s, then falls to 0.10."
    )


def test_flicker_shorter_than_a_micro_expression_and_small_changes_are_not_worded() -> None:
    surprise = np.full(50, 0.05)
    surprise[20:22] = 0.8  # two frames: 0.08 s
    neutral = ramp(50, 0.60, 0.70, 10, 40)  # +0.10, under the 0.15 threshold
    times, probs = trajectory(surprise=surprise, neutral=neutral, happy=np.full(50, 0.2))
    assert describe_trajectory(times, probs, LABELS, 0.0, 1.96).startswith(
        "the expression stays steady, mostly neutral"
    )
    looser = TrajectoryWording(change=0.05, spike_min_s=0.05)
    assert describe_trajectory(times, probs, LABELS, 0.0, 1.96, looser) == (
        "a brief surprise spike (0.08 s) peaks at 0.80 s (0.80) and neutral rises from 0.60 to 0.70."
    )


def test_at_most_max_events_changes_are_worded() -> None:
    happy = ramp(50, 0.05, 0.60, 10, 30)
    neutral = ramp(50, 0.70, 0.10, 10, 30)
    surprise = ramp(50, 0.25, 0.30, 10, 30)
    times, probs = trajectory(happy=happy, neutral=neutral, surprise=surprise)
    one = TrajectoryWording(max_events=1)
    assert describe_trajectory(times, probs, LABELS, 0.0, 1.96, one) == (
        "neutral falls from 0.70 to 0.10."
    )


def test_a_window_without_face_frames_says_so() -> None:
    times, probs = trajectory(neutral=np.full(10, 0.8))
    assert describe_trajectory(times, probs, LABELS, 3.0, 4.0) == NO_FACE
    assert describe_trajectory([], np.zeros((0, 3)), LABELS, 0.0, 1.0) == NO_FACE


def test_running_median_removes_single_frame_outliers_and_keeps_ramps() -> None:
    values = np.array([[0.1], [0.9], [0.1], [0.2], [0.3], [0.4]])
    assert running_median(values, 3)[:, 0].tolist() == pytest.approx([0.1, 0.1, 0.2, 0.2, 0.3, 0.4])
    assert running_median(values, 1) is values


@pytest.fixture(scope="module")
def specialist() -> SpecialistDescriber:
    return SpecialistDescriber(get_label_space("dfew"), faces="haar")


def test_the_real_smile_is_worded_as_happiness_rising_then_falling(
    specialist: SpecialistDescriber, asset: Callable[[str], Path]
) -> None:
    # feat-video-single-face: 2.4 s; a neutral face smiles from ~0.6 s and relaxes in the last frames.
    windows = tuple(
        Window(start, end) for start, end in [(0.0, 0.4), (0.4, 1.2), (1.2, 2.0), (2.0, 2.4)]
    )
    (motion,) = specialist.describe(
        [ClipWindows(Sample("smile", asset("feat-video-single-face")), windows)]
    )
    assert not motion.error and len(motion.texts) == 4
    before, rise, held, after = motion.texts
    assert "happiness rises" in rise and "happiness" not in before
    assert held.startswith("the expression stays steady, mostly happiness")
    assert "happiness falls" in after
    assert motion.cost.calls == 0 and motion.cost.seconds > 0
    assert motion.extra["frames_described"] == 72  # every frame, not only the planned ones


def test_an_unreadable_clip_comes_back_as_an_error(
    specialist: SpecialistDescriber, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    (motion,) = specialist.describe([ClipWindows(Sample("broken", broken), (Window(0.0, 1.0),))])
    assert "broken.mp4" in motion.error and motion.texts == ()
