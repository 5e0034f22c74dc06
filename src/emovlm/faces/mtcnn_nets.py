"""The three MTCNN networks (Zhang et al. 2016) with layer names matching facenet-pytorch's weights.

The weights were converted from the original Caffe models, which were trained on transposed
(column-major, MATLAB) images. The converted convolution kernels already account for that, so
the networks take ordinary (N, 3, H, W) RGB input scaled by (x - 127.5) / 128; only the
flattening before the first dense layer of R-Net and O-Net must run in (W, H, C) order to
match the converted dense weights.
"""

from __future__ import annotations

import torch
from torch import nn

from emovlm.assets import asset_path


def _flatten_transposed(x: torch.Tensor) -> torch.Tensor:
    """Flatten (N, C, H, W) maps in (W, H, C) order, as the converted dense layers expect."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    """Proposal network: a fully convolutional 12×12 face/non-face classifier and box regressor."""

    def __init__(self) -> None:
        """Build the layers; load weights with `load_state_dict` (see `load_mtcnn_nets`)."""
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Face probability map (N, H', W') and box offsets (N, 4, H', W') at stride 2."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return torch.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)


class RNet(nn.Module):
    """Refinement network: classifies 24×24 candidate crops and refines their boxes."""

    def __init__(self) -> None:
        """Build the layers; load weights with `load_state_dict` (see `load_mtcnn_nets`)."""
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Face probability (N,) and box offsets (N, 4) for (N, 3, 24, 24) crops."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten_transposed(x)))
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output network: classifies 48×48 crops, refines boxes and places five landmarks."""

    def __init__(self) -> None:
        """Build the layers; load weights with `load_state_dict` (see `load_mtcnn_nets`)."""
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Face probability (N,), box offsets (N, 4) and landmarks (N, 10) for 48×48 crops.

        Landmarks are the five x positions then the five y positions, as fractions of the
        crop's width and height.
        """
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_flatten_transposed(x)))
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


def load_mtcnn_nets(device: str = "cpu") -> tuple[PNet, RNet, ONet]:
    """P-Net, R-Net and O-Net with the facenet-pytorch 2.6.0 weights, in eval mode on `device`."""
    nets = (PNet(), RNet(), ONet())
    for net, asset in zip(nets, ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet"), strict=True):
        state = torch.load(asset_path(asset), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        # Channels-last makes the max-pooling layers several times faster on CPU.
        net.to(device, memory_format=torch.channels_last).eval().requires_grad_(False)
    return nets
