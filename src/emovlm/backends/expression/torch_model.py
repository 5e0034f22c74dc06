"""Batched, gradient-free inference shared by the expression models ported to PyTorch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from emovlm.errors import InputError

CPU_BATCH = 16
"""Crops per network call on the CPU: a batch's early feature maps then stay in the core's
caches (fer-xception's first blocks hold 16 maps of 60x60 per crop); in the specialist's
pipeline 16 took about a quarter less CPU time than 64 (benchmarks/RESULTS.md)."""

GPU_BATCH = 64
"""Crops per network call on a GPU."""


class PortedExpressionModel(ABC):
    """Face crops → preprocessing → network → probabilities or penultimate features, in batches.

    Subclasses set `name`, `classes`, `input_size` and `embedding_size` (and `reads_grey`
    when the network sees only grey: it then also takes (H, W) grey crops), and implement
    `_preprocess` (uint8 crops → one float tensor batch) and `_network_outputs`
    (batch → features, probabilities).
    """

    name: str
    classes: tuple[str, ...]
    input_size: int
    embedding_size: int
    reads_grey: bool = False

    def __init__(
        self, network: nn.Module, device: str = "cpu", batch_size: int | None = None
    ) -> None:
        """Hold `network` in eval mode on `device`; faces run through it `batch_size` at a time
        (by default CPU_BATCH on the CPU, GPU_BATCH on a GPU)."""
        self.device = torch.device(device)
        if batch_size is None:
            batch_size = CPU_BATCH if self.device.type == "cpu" else GPU_BATCH
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        # Channels-last runs these small convolution stacks about twice as fast on CPU.
        self.network = network.eval().to(self.device, memory_format=torch.channels_last)

    def predict_proba(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, len(classes)) float32 for RGB uint8 face crops of any size
        (or grey ones, when the model `reads_grey`)."""
        return self._run(faces, want_features=False)

    def embed(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """Penultimate features (N, embedding_size) float32: what the class head reads."""
        return self._run(faces, want_features=True)

    def _run(self, faces: Sequence[np.ndarray], want_features: bool) -> np.ndarray:
        width = self.embedding_size if want_features else len(self.classes)
        chunks = [np.zeros((0, width), np.float32)]
        with torch.inference_mode():
            for start in range(0, len(faces), self.batch_size):
                batch = [
                    _checked(face, start + i, self.reads_grey)
                    for i, face in enumerate(faces[start : start + self.batch_size])
                ]
                inputs = padded_batch(self._preprocess(batch).to(self.device))
                features, probabilities = self._network_outputs(
                    inputs.contiguous(memory_format=torch.channels_last)
                )
                chosen = features if want_features else probabilities
                chunks.append(chosen[: len(batch)].float().cpu().numpy())
        return np.concatenate(chunks)

    @abstractmethod
    def _preprocess(self, faces: list[np.ndarray]) -> torch.Tensor:
        """The input batch for checked RGB uint8 crops, preprocessed as the original does."""

    @abstractmethod
    def _network_outputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features, class probabilities in `classes` order) for one input batch."""


def padded_batch(batch: torch.Tensor) -> torch.Tensor:
    """The batch padded with zero rows to the next power of two.

    oneDNN builds kernels for every new input shape (about 0.1 s per shape for a small network
    on CPU); with a handful of batch sizes, calls of any size reuse them.
    """
    size = 1 << max(0, len(batch) - 1).bit_length()
    if size == len(batch):
        return batch
    return torch.cat([batch, batch.new_zeros((size - len(batch), *batch.shape[1:]))])


def frozen_parameter(array: np.ndarray) -> nn.Parameter:
    """A float32 parameter that no optimiser updates, from weights read off a file."""
    return nn.Parameter(
        torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)), requires_grad=False
    )


def _checked(face: np.ndarray, index: int, grey_too: bool) -> np.ndarray:
    """The face as given when it is an (H, W, 3) uint8 RGB array (or (H, W) grey, with
    `grey_too`), else a clear error."""
    face = np.asarray(face)
    rgb = face.ndim == 3 and face.shape[2] == 3
    if not (rgb or grey_too and face.ndim == 2) or face.dtype != np.uint8 or 0 in face.shape:
        wanted = "(H, W, 3) uint8 RGB or (H, W) uint8 grey" if grey_too else "(H, W, 3) uint8 RGB"
        raise InputError(
            f"face crop {index} has shape {face.shape} and dtype {face.dtype}; "
            f"expected a non-empty {wanted} array"
        )
    return face
