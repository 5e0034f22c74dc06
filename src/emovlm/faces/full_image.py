"""The "none" face detector: every image is already a face crop, so its face is the whole image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emovlm.faces.base import Face, check_rgb_image


class FullImageDetector:
    """Returns one face covering each whole image (score 1.0, no landmarks), for face-crop datasets.

    `device` is accepted so that every detector takes the same arguments; nothing runs on it.
    """

    name = "none"

    def __init__(self, device: str = "cpu") -> None:
        """Nothing to load."""
        self.device = device

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """One full-image face per image."""
        faces = []
        for image in images:
            check_rgb_image(image)
            height, width = image.shape[:2]
            faces.append([Face((0.0, 0.0, float(width), float(height)), 1.0)])
        return faces
