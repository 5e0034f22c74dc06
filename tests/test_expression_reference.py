"""The PyTorch ports agree with the original runtimes (Keras, TF.js) on real faces."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emovlm.backends.expression.faceapi import FaceApiExpression
from emovlm.backends.expression.fer_xception import FerXception
from emovlm.backends.expression.torch_model import PortedExpressionModel

REFERENCE = json.loads((Path(__file__).parent / "data" / "expression_reference.json").read_text())
TOLERANCE = 1e-4
"""Largest allowed gap per probability; measured 6e-7 (vs Keras) and 4e-7 (vs TF.js)."""

MODELS: dict[str, Callable[..., PortedExpressionModel]] = {
    "fer-xception": FerXception,
    "faceapi": FaceApiExpression,
}


@pytest.fixture(scope="module")
def faces(asset: Callable[[str], Path]) -> dict[str, np.ndarray]:
    """The reference face crops (RGB uint8), cut from real photos with the stored boxes."""
    crops = {}
    for name, face in REFERENCE["faces"].items():
        x1, y1, x2, y2 = face["box"]
        crops[name] = np.asarray(Image.open(asset(face["asset"])).convert("RGB"))[y1:y2, x1:x2]
    return crops


@pytest.fixture(scope="module", params=list(MODELS))
def model(request: pytest.FixtureRequest) -> PortedExpressionModel:
    """Each ported model, with a batch size that splits the six reference faces into two batches."""
    return MODELS[request.param](batch_size=4)


def test_port_matches_the_original_runtime(
    model: PortedExpressionModel, faces: dict[str, np.ndarray]
) -> None:
    assert list(model.classes) == REFERENCE["classes"]
    expected = REFERENCE["models"][model.name]["probabilities"]
    names = list(expected)
    got = model.predict_proba([faces[n] for n in names])
    want = np.array([expected[n] for n in names], dtype=np.float32)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)
    assert got.argmax(axis=1).tolist() == want.argmax(axis=1).tolist()


def test_smiling_faces_are_happy(
    model: PortedExpressionModel, faces: dict[str, np.ndarray]
) -> None:
    smiling = ["astronaut", "feat-happy", "feat-single-face"]
    top = model.predict_proba([faces[n] for n in smiling]).argmax(axis=1)
    assert [model.classes[i] for i in top] == ["happy"] * len(smiling)
