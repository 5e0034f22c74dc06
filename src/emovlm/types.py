"""Core value types shared by every part of emovlm: samples, frames, clips, predictions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

Box = tuple[float, float, float, float]
"""A box in pixels as (x1, y1, x2, y2), top-left origin."""


class Status(StrEnum):
    """Outcome of one sample: a usable label, an answer outside the label set, no label, or an error."""

    OK = "ok"
    OUT_OF_SET = "out_of_set"
    UNPARSED = "unparsed"
    FAILED = "failed"


@dataclass(frozen=True)
class Sample:
    """One item of a dataset: where its media is and what its gold labels are; no pixels."""

    id: str
    media: Path
    labels: tuple[str, ...] = ()
    box: Box | None = None
    vad: tuple[float, float, float] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


class Pixels(Protocol):
    """A decoded picture not yet converted: its RGB image and its grey one, each made on demand."""

    def rgb(self) -> np.ndarray:
        """The picture as RGB uint8 (H, W, 3)."""
        ...

    def grey(self) -> np.ndarray:
        """The picture as BT.601 grey uint8 (H, W), as OpenCV's RGB-to-grey gives it."""
        ...


class Frame:
    """One decoded RGB image (H, W, 3, uint8) with its time in seconds and index in the source.

    Built from `Pixels` (a decoded video frame), the RGB image is made when `image` is first
    read, and `grey` comes straight from the pixels (for most video, the luma plane), so work
    that reads only grey never converts to RGB.
    """

    __slots__ = ("_image", "_pixels", "time", "index")

    def __init__(self, image: np.ndarray | Pixels, time: float, index: int) -> None:
        self._image, self._pixels = (
            (image, None) if isinstance(image, np.ndarray) else (None, image)
        )
        self.time = time
        self.index = index

    @property
    def image(self) -> np.ndarray:
        """The RGB image (H, W, 3) uint8."""
        if self._image is None:
            assert self._pixels is not None
            self._image = self._pixels.rgb()
        return self._image

    @property
    def grey(self) -> np.ndarray:
        """The BT.601 grey image (H, W) uint8."""
        if self._pixels is not None:
            return self._pixels.grey()
        import cv2

        return cv2.cvtColor(self.image, cv2.COLOR_RGB2GRAY)

    def __repr__(self) -> str:
        return f"Frame(time={self.time!r}, index={self.index!r})"


@dataclass(frozen=True)
class Clip:
    """Frames taken from one video or image, with the source's frame rate, length and duration."""

    frames: tuple[Frame, ...]
    fps: float
    frame_count: int
    duration: float


@dataclass(frozen=True)
class Cost:
    """What one prediction cost: model calls, tokens and wall-clock seconds."""

    calls: int = 0
    input_tokens: int = 0
    visual_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        """Sum two costs field by field."""
        return Cost(
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.visual_tokens + other.visual_tokens,
            self.output_tokens + other.output_tokens,
            self.seconds + other.seconds,
        )


@dataclass(frozen=True, eq=False)
class FrameResults:
    """Per-frame results of one sample: one row per analysed frame and face, as parallel arrays.

    `index` (int64) is the frame's index in the source and `time` (float64) its time in
    seconds; `probs` (N, len(labels)) float32 holds the label probabilities; `box` (N, 4)
    float32 the face box in displayed pixels; `track` (int32) a face id stable across frames,
    -1 on the row of a frame where no face was found (its probabilities and box are NaN);
    `main` (bool) marks the rows of the main face, which the clip label is computed from.
    Rows are in time order, faces of one frame by track id.
    """

    labels: tuple[str, ...]
    index: np.ndarray
    time: np.ndarray
    probs: np.ndarray
    box: np.ndarray
    track: np.ndarray
    main: np.ndarray

    def __len__(self) -> int:
        """Number of rows."""
        return len(self.index)


@dataclass(frozen=True)
class Prediction:
    """A recognizer's answer for one sample.

    `labels` is ranked, most likely first. Answers outside the label space are kept as their
    normalised text (they never equal a label name); `status` says whether the top answer is a
    label (ok), an out-of-set word, unparseable, or the sample failed (`reason` says why).
    `frames` holds per-frame results where the recognizer has them (the specialist on video).
    """

    sample_id: str
    labels: tuple[str, ...] = ()
    scores: Mapping[str, float] | None = None
    raw: str = ""
    status: Status = Status.OK
    reason: str = ""
    cost: Cost = field(default_factory=Cost)
    extra: Mapping[str, Any] = field(default_factory=dict)
    frames: FrameResults | None = None

    @property
    def top(self) -> str | None:
        """The top-ranked answer, or None when there is none."""
        return self.labels[0] if self.labels else None

    @classmethod
    def failed(cls, sample_id: str, reason: str, cost: Cost | None = None) -> Prediction:
        """A failed prediction that keeps the sample and says why it failed."""
        return cls(sample_id=sample_id, status=Status.FAILED, reason=reason, cost=cost or Cost())
