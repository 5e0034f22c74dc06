"""OpenCV's Haar-cascade frontal face detector: the light fallback that needs no model weights."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from emovlm.errors import MissingDependencyError
from emovlm.faces.base import Face, check_rgb_image

CASCADE_FILE = "haarcascade_frontalface_default.xml"


def cascade_path() -> Path:
    """Where OpenCV keeps the frontal-face cascade; MissingDependencyError when it ships none."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder or "") / CASCADE_FILE
    if not folder or not path.is_file():
        raise MissingDependencyError(
            f"OpenCV {cv2.__version__} has no {CASCADE_FILE} (OpenCV 5 and later ship no Haar "
            "cascades); run: pip install 'opencv-python-headless<5', or use --faces mtcnn"
        )
    return path


class HaarDetector:
    """Viola-Jones frontal faces from OpenCV's bundled cascade; no landmarks, CPU only.

    `score` is the number of raw detections merged into each face (higher is surer);
    `min_face_size` is the smallest face side searched in pixels, `scale_factor` the pyramid
    step and `min_neighbors` how many raw detections a face needs. `device` is accepted so that
    every detector takes the same arguments; OpenCV's cascade always runs on the CPU.
    """

    name = "haar"

    def __init__(
        self,
        device: str = "cpu",
        min_face_size: int = 20,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
    ) -> None:
        """Load the cascade bundled with OpenCV (< 5)."""
        self.device = device
        self.min_face_size = min_face_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.classifier = cv2.CascadeClassifier(str(cascade_path()))

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces in each RGB uint8 image, surest (most merged detections) first."""
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> list[Face]:
        """Faces in one image."""
        check_rgb_image(image)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        rects, neighbours = self.classifier.detectMultiScale2(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_face_size, self.min_face_size),
        )
        faces = [
            Face((x, y, x + w, y + h), score)
            for (x, y, w, h), score in zip(
                np.reshape(rects, (-1, 4)), np.ravel(neighbours), strict=True
            )
        ]
        return sorted(faces, key=lambda face: -face.score)
