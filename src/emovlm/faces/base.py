"""The `Face` value and the `FaceDetector` protocol that every face detector implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from emovlm.errors import InputError
from emovlm.types import Box

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""Row order of `Face.landmarks`; "left" means image-left (the subject's right)."""


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face: a pixel box, the detector's confidence and optional 5-point landmarks.

    `score` is MTCNN's face probability in [0, 1], the number of merged raw detections for
    Haar, and 1.0 for the full-image "none" detector. `landmarks` is a read-only (5, 2) float
    array of (x, y) image coordinates in `LANDMARK_NAMES` order, or None when the detector has
    none.
    """

    box: Box
    score: float
    landmarks: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Store the box as floats and the landmarks as a read-only (5, 2) float array."""
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))
        object.__setattr__(self, "score", float(self.score))
        if self.landmarks is not None:
            points = np.array(self.landmarks, dtype=np.float64).reshape(len(LANDMARK_NAMES), 2)
            points.setflags(write=False)
            object.__setattr__(self, "landmarks", points)

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        """Box area in square pixels (0 for a degenerate box)."""
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        """Box centre as (x, y)."""
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in RGB uint8 images (H, W, 3); one list of faces per image, best first."""

    name: str

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces found in each image, in the order of `images`."""
        ...


def check_rgb_image(image: np.ndarray) -> None:
    """Raise InputError unless `image` is an (H, W, 3) uint8 array, as detectors expect."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(
            f"face detectors take RGB uint8 images of shape (H, W, 3); got {image.dtype} "
            f"{image.shape}: convert with np.asarray(PIL.Image.open(path).convert('RGB'))"
        )
