"""MSCE stage 1, motion to text: one sentence per stretch of a clip, from a VLM or the specialist.

The VLM describer shows a VLM the frames chosen inside each stretch and asks for one sentence.
The specialist describer runs the offline expression model over every frame of the clip once
and words its per-frame trajectory deterministically (`describe_trajectory`): which expression
rises or falls, from what to what, when a rise-and-fall peaks, and brief spikes of 0.25-0.5 s,
the length of a micro-expression.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from emovlm.backends.vlm import VLM, GenerationSettings, VLMRequest
from emovlm.labels import LabelSpace
from emovlm.prompts import load_prompt
from emovlm.recognizers.base import model_config
from emovlm.recognizers.specialist import SpecialistRecognizer
from emovlm.recognizers.vlm import visual_part
from emovlm.types import Cost, Frame, Sample, Status

EMOTION_NOUNS = {"happy": "happiness", "sad": "sadness", "angry": "anger"}
"""Label names worded as nouns in sentences ("happiness rises"); other labels are used as is."""

NO_FACE = "no face is visible."
"""The sentence of a stretch in which the specialist found no face."""

SPECIALIST_BATCH = 8
"""Clips whose every frame the specialist describer holds in memory at once."""

_TIME_TOLERANCE = 1e-6


@dataclass(frozen=True)
class TrajectoryWording:
    """Thresholds of the specialist describer's sentences (documented in docs/msce.md).

    `change`: smallest probability change that is worded (rise, fall, or a peak's height above
    the higher of its two ends). `spike_min_s`-`spike_max_s`: a rise-and-fall whose width at
    half height lies in this range is a "brief spike"; a narrower one is taken for detector
    flicker and not worded as a peak. `smoothing`: frames of the running median applied to the
    trajectory first. `max_events`: most changes worded per sentence, largest first.
    """

    change: float = 0.15
    spike_min_s: float = 0.25
    spike_max_s: float = 0.5
    smoothing: int = 3
    max_events: int = 2


@dataclass(frozen=True)
class Window:
    """A stretch of a clip to describe: its span in seconds and the frames chosen inside it."""

    start: float
    end: float
    frames: tuple[Frame, ...] = ()


@dataclass(frozen=True)
class ClipWindows:
    """One sample and the stretches of it to describe, in time order."""

    sample: Sample
    windows: tuple[Window, ...]


@dataclass(frozen=True)
class Motion:
    """A describer's sentences for one clip (one per window, "" for none), cost, or an error."""

    texts: tuple[str, ...] = ()
    cost: Cost = field(default_factory=Cost)
    error: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


class MotionDescriber(Protocol):
    """Turns the stretches of clips into one sentence each about how the face moves."""

    name: str

    def config(self) -> Mapping[str, Any]:
        """The settings that determine the sentences."""
        ...

    def describe(self, clips: Sequence[ClipWindows]) -> list[Motion]:
        """One Motion per clip, in order; problems of one clip come back as its `error`."""
        ...


def running_median(values: np.ndarray, frames: int) -> np.ndarray:
    """Running median over `frames` frames along axis 0, edges padded with the end values."""
    if frames <= 1 or len(values) < 2:
        return values
    half = frames // 2
    padded = np.pad(values, ((half, frames - 1 - half), (0, 0)), mode="edge")
    stacked = np.stack([padded[i : i + len(values)] for i in range(frames)])
    return np.median(stacked, axis=0)


def describe_trajectory(
    times: Sequence[float],
    probs: np.ndarray,
    labels: Sequence[str],
    start: float,
    end: float,
    wording: TrajectoryWording = TrajectoryWording(),
) -> str:
    """One sentence on how per-frame label probabilities (T, L) move from `start` to `end` s."""
    times = np.asarray(times, dtype=float)
    if len(times) == 0:
        return NO_FACE
    smooth = running_median(np.asarray(probs, dtype=float), wording.smoothing)
    inside = (times >= start - _TIME_TOLERANCE) & (times <= end + _TIME_TOLERANCE)
    if not inside.any():
        return NO_FACE
    period = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    t, values = times[inside], smooth[inside]
    nouns = [EMOTION_NOUNS.get(label, label) for label in labels]
    events = [
        event
        for j, noun in enumerate(nouns)
        if (event := _event(t, values[:, j], noun, period, wording)) is not None
    ]
    if not events:
        top = int(np.argmax(values.mean(axis=0)))
        return f"the expression stays steady, mostly {nouns[top]} ({values[:, top].mean():.2f})."
    events.sort(key=lambda item: -item[0])
    return _joined([text for _, text in events[: wording.max_events]]) + "."


def _event(
    t: np.ndarray, v: np.ndarray, noun: str, period: float, wording: TrajectoryWording
) -> tuple[float, str] | None:
    """The largest worded change of one label in a window as (size, phrase), or None."""
    first, last = float(v[0]), float(v[-1])
    peak_at = int(np.argmax(v))
    peak = float(v[peak_at])
    base = max(first, last)
    if 0 < peak_at < len(v) - 1 and peak - base >= wording.change:
        width = _width_at_half_height(t, v, peak_at, base + (peak - base) / 2) + period
        when = f"{t[peak_at]:.2f} s"
        if wording.spike_min_s <= width <= wording.spike_max_s:
            return peak - base, f"a brief {noun} spike ({width:.2f} s) peaks at {when} ({peak:.2f})"
        if width > wording.spike_max_s:
            return peak - base, (
                f"{noun} rises from {first:.2f} to {peak:.2f} at {when}, then falls to {last:.2f}"
            )
    change = last - first
    if abs(change) >= wording.change:
        verb = "rises" if change > 0 else "falls"
        return abs(change), f"{noun} {verb} from {first:.2f} to {last:.2f}"
    return None


def _width_at_half_height(t: np.ndarray, v: np.ndarray, peak_at: int, half: float) -> float:
    """Seconds from the first to the last frame of the run at or above `half` around the peak."""
    left = right = peak_at
    while left > 0 and v[left - 1] >= half:
        left -= 1
    while right < len(v) - 1 and v[right + 1] >= half:
        right += 1
    return float(t[right] - t[left])


def _joined(phrases: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


class SpecialistDescriber:
    """Words the offline specialist's per-frame trajectory over every frame of the clip."""

    name = "specialist"

    def __init__(
        self,
        label_space: LabelSpace,
        *,
        model: str = "fer-xception",
        faces: str = "mtcnn",
        face_step: int = 10,
        device: str = "cpu",
        wording: TrajectoryWording = TrajectoryWording(),
    ) -> None:
        self.specialist = SpecialistRecognizer(
            label_space, model=model, faces=faces, face_step=face_step, frames="all", device=device
        )
        self.wording = wording

    def config(self) -> Mapping[str, Any]:
        """The specialist's settings and the wording thresholds."""
        settings = dict(self.specialist.config())
        for unused in ("recognizer", "label_set", "multi_label_threshold", "frames", "aggregate"):
            settings.pop(unused, None)
        return {**settings, "describer": self.name, "wording": asdict(self.wording)}

    def describe(self, clips: Sequence[ClipWindows]) -> list[Motion]:
        """Run the specialist over every frame of each clip once, then word each window."""
        samples = [clip.sample for clip in clips]
        predictions = [
            prediction
            for start in range(0, len(samples), SPECIALIST_BATCH)
            for prediction in self.specialist.predict(samples[start : start + SPECIALIST_BATCH])
        ]
        motions = []
        for clip, prediction in zip(clips, predictions, strict=True):
            cost = Cost(seconds=prediction.cost.seconds)
            if prediction.status is Status.FAILED:
                motions.append(Motion(cost=cost, error=prediction.reason))
                continue
            frames = prediction.frames  # every answered sample of the specialist has them
            times, probs = frames.time[frames.main], frames.probs[frames.main]
            texts = tuple(
                describe_trajectory(times, probs, frames.labels, w.start, w.end, self.wording)
                for w in clip.windows
            )
            frames_seen = prediction.extra.get("frames_with_face", 0)
            motions.append(Motion(texts, cost, extra={"frames_described": frames_seen}))
        return motions


class VLMDescriber:
    """Asks a VLM for one sentence per window, showing it exactly the window's chosen frames."""

    name = "vlm"

    def __init__(
        self,
        vlm: VLM,
        *,
        backend: str,
        model: str,
        prompt: str = "msce-describe",
        max_new_tokens: int = 48,
        temperature: float = 0.0,
    ) -> None:
        self.vlm, self.backend_name, self.model = vlm, backend, model
        self.template = load_prompt(prompt)
        self.settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature)

    def config(self) -> Mapping[str, Any]:
        """Model, prompt and decoding settings of the describer."""
        return {
            "describer": self.name,
            **model_config(self.backend_name, self.model, self.vlm),
            "prompt": self.template.name,
            "prompt_sha256": hashlib.sha256(self.template.source.encode()).hexdigest(),
            "max_new_tokens": self.settings.max_new_tokens,
            "temperature": self.settings.temperature,
        }

    def request(self, window: Window) -> VLMRequest:
        """The describer's question about one window: its frames in time order, then the prompt."""
        images = [frame.image for frame in window.frames]
        span = window.end - window.start
        rate = (len(images) + 1) / span if span > 0 else float(len(images))
        text = self.template.render(num_frames=len(images), start=window.start, end=window.end)
        return VLMRequest((visual_part(images, rate), text))

    def describe(self, clips: Sequence[ClipWindows]) -> list[Motion]:
        """One VLM call per window that holds frames, all clips' calls sent together."""
        asked = [
            (c, w)
            for c, clip in enumerate(clips)
            for w, win in enumerate(clip.windows)
            if win.frames
        ]
        answers = self.vlm.generate(
            [self.request(clips[c].windows[w]) for c, w in asked], self.settings
        )
        texts = [[""] * len(clip.windows) for clip in clips]
        costs = [Cost() for _ in clips]
        errors = [""] * len(clips)
        cached = [0] * len(clips)
        for (c, w), answer in zip(asked, answers, strict=True):
            costs[c] += answer.cost
            cached[c] += answer.cached
            problem = answer.error or (f"refused: {answer.refusal}" if answer.refusal else "")
            if problem and not errors[c]:
                window = clips[c].windows[w]
                errors[c] = f"describing {window.start:.2f}-{window.end:.2f} s: {problem}"
            texts[c][w] = " ".join(answer.text.split())
        return [
            Motion(tuple(t), cost, error, {"describer_calls_cached": n})
            for t, cost, error, n in zip(texts, costs, errors, cached, strict=True)
        ]
