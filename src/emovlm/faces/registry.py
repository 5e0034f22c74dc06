"""Face detectors by name ("mtcnn", "haar", "none"), built once per name, device and settings."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from emovlm.faces.base import FaceDetector
from emovlm.registry import Registry

FACE_DETECTORS: Registry[FaceDetector] = Registry("face detector")
FACE_DETECTORS.add(
    "mtcnn",
    "emovlm.faces.mtcnn:MTCNNDetector",
    help="MTCNN (Zhang et al. 2016) with 5 landmarks; weights from facenet-pytorch 2.6.0 (MIT)",
)
FACE_DETECTORS.add(
    "haar",
    "emovlm.faces.haar:HaarDetector",
    help="OpenCV Haar cascade, frontal faces only, no landmarks; fast, no weights to fetch",
)
FACE_DETECTORS.add(
    "none",
    "emovlm.faces.full_image:FullImageDetector",
    help="no detection: the whole image is the face (datasets that ship face crops)",
)


def get_face_detector(name: str, device: str = "cpu", **settings: Any) -> FaceDetector:
    """The detector registered as `name` on `device`, built once and reused for equal settings.

    `settings` go to the detector's constructor (e.g. `min_face_size=40` or
    `thresholds=(0.6, 0.7, 0.8)` for MTCNN); lists are taken as tuples.
    """
    frozen = tuple(
        sorted(
            (key, tuple(value) if isinstance(value, list) else value)
            for key, value in settings.items()
        )
    )
    return _build(name, device, frozen)


@lru_cache(maxsize=16)
def _build(name: str, device: str, settings: tuple[tuple[str, Any], ...]) -> FaceDetector:
    """Construct a detector; cached so weights load once per (name, device, settings)."""
    return FACE_DETECTORS.get(name)(device=device, **dict(settings))
