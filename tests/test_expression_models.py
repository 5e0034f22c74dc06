"""The expression models' shared API: shapes, empty input, embeddings, bad input, registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from emovlm.backends.base import EXPRESSION_MODELS
from emovlm.backends.expression.faceapi import FaceApiExpression
from emovlm.backends.expression.torch_model import PortedExpressionModel
from emovlm.errors import InputError
from emovlm.labels import get_label_space


@pytest.fixture(scope="module", params=EXPRESSION_MODELS.names())
def model(request: pytest.FixtureRequest) -> PortedExpressionModel:
    """Each registered expression model, built through the registry as recognizers build it."""
    return EXPRESSION_MODELS.get(request.param)(device="cpu")


@pytest.fixture(scope="module")
def astronaut_face(asset: Callable[[str], Path]) -> np.ndarray:
    """The astronaut's face (130x110 RGB uint8: not square, so each model's own resizing runs)."""
    return np.asarray(Image.open(asset("astronaut")).convert("RGB"))[55:185, 165:275]


def test_models_share_the_fer2013_classes(model: PortedExpressionModel) -> None:
    assert model.classes == get_label_space("fer2013").labels


def test_probabilities_are_a_distribution_per_face(
    model: PortedExpressionModel, astronaut_face: np.ndarray
) -> None:
    faces = [astronaut_face, astronaut_face[:40, :90], np.zeros((8, 8, 3), np.uint8)]
    probabilities = model.predict_proba(faces)
    assert probabilities.shape == (3, 7) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()


def test_no_faces_give_empty_arrays(model: PortedExpressionModel) -> None:
    assert model.predict_proba([]).shape == (0, 7)
    assert model.embed([]).shape == (0, model.embedding_size)


def test_batch_size_does_not_change_results(
    model: PortedExpressionModel, astronaut_face: np.ndarray
) -> None:
    faces = [
        astronaut_face,
        np.ascontiguousarray(astronaut_face[:, ::-1]),
        astronaut_face[10:100, 5:95],
    ]
    one_at_a_time = type(model)(batch_size=1)
    np.testing.assert_allclose(
        one_at_a_time.predict_proba(faces), model.predict_proba(faces), atol=1e-6
    )
    np.testing.assert_allclose(one_at_a_time.embed(faces), model.embed(faces), atol=1e-5)


def test_embeddings_tell_faces_apart(
    model: PortedExpressionModel, astronaut_face: np.ndarray
) -> None:
    features = model.embed([astronaut_face, astronaut_face, np.full((64, 64, 3), 128, np.uint8)])
    assert features.shape == (3, model.embedding_size) and features.dtype == np.float32
    np.testing.assert_array_equal(features[0], features[1])
    assert not np.allclose(features[0], features[2], atol=1e-3)


def test_faceapi_head_reads_exactly_the_embedding(astronaut_face: np.ndarray) -> None:
    model = FaceApiExpression()
    features = torch.from_numpy(model.embed([astronaut_face]))
    logits = features @ model.network.fc_weight.T + model.network.fc_bias
    np.testing.assert_allclose(
        torch.softmax(logits, 1).numpy(), model.predict_proba([astronaut_face]), atol=1e-6
    )


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((32, 32), np.uint8),
        np.zeros((32, 32, 3), np.float32),
        np.zeros((0, 32, 3), np.uint8),
    ],
)
def test_bad_crops_are_rejected_with_a_clear_error(
    model: PortedExpressionModel, bad: np.ndarray
) -> None:
    if model.reads_grey and bad.ndim == 2 and bad.dtype == np.uint8:
        pytest.skip("a grey model takes (H, W) grey crops")
    with pytest.raises(InputError, match=r"face crop 1 .*\(H, W, 3\) uint8 RGB"):
        model.predict_proba([np.zeros((32, 32, 3), np.uint8), bad])


def test_a_grey_model_answers_a_grey_crop_as_its_rgb(
    model: PortedExpressionModel, astronaut_face: np.ndarray
) -> None:
    """fer-xception sees only grey: the grey crop gives the RGB crop's probabilities; faceapi
    refuses grey."""
    grey = cv2.cvtColor(astronaut_face, cv2.COLOR_RGB2GRAY)
    if not model.reads_grey:
        with pytest.raises(InputError, match="face crop 0"):
            model.predict_proba([grey])
        return
    np.testing.assert_array_equal(
        model.predict_proba([grey]), model.predict_proba([astronaut_face])
    )


def test_zero_batch_size_is_rejected() -> None:
    with pytest.raises(InputError, match="batch_size"):
        FaceApiExpression(batch_size=0)


def test_folded_layers_are_refused_as_outputs_by_name() -> None:
    """fer-xception's batch norms and ReLUs run inside its convolutions; asking for one is an error."""
    network = EXPRESSION_MODELS.get("fer-xception")(device="cpu").network
    assert {"conv2d_1", "batch_normalization_1"} <= network.folded
    with torch.inference_mode(), pytest.raises(InputError, match="batch_normalization_1"):
        network(torch.zeros(1, 1, 64, 64), outputs=("batch_normalization_1",))
