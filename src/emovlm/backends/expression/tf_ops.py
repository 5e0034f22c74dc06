"""TensorFlow's padding and resizing conventions, reproduced in PyTorch for ported weights."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one axis: (before, after); the odd pixel goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad NCHW as TensorFlow's 'same' padding does: the odd pixel goes after, not before."""
    pads = [*same_pads(x.shape[3], kernel, stride), *same_pads(x.shape[2], kernel, stride)]
    return F.pad(x, pads, value=value) if any(pads) else x


def resize_bilinear_legacy(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize NCHW to size x size as TF's resizeBilinear with alignCorners, halfPixelCenters off."""
    for axis in (3, 2):  # columns first, then rows, in TF.js's order
        x = _interpolate_axis(x, axis, size)
    return x


def _interpolate_axis(x: torch.Tensor, axis: int, size: int) -> torch.Tensor:
    length = x.shape[axis]
    if length == size:
        return x
    source = torch.arange(size, dtype=torch.float64, device=x.device) * (length / size)
    low = source.floor().long().clamp(max=length - 1)
    high = (low + 1).clamp(max=length - 1)
    shape = [1, 1, 1, 1]
    shape[axis] = size
    weight = (source - low).to(x.dtype).view(shape)
    below, above = x.index_select(axis, low), x.index_select(axis, high)
    return below + (above - below) * weight
