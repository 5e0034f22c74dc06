"""Rebuild a Keras functional model saved as HDF5 (config + weights) in PyTorch, without TF."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emovlm.backends.expression.tf_ops import pad_same, same_pads
from emovlm.backends.expression.torch_model import frozen_parameter
from emovlm.errors import InputError

Weights = Mapping[str, np.ndarray]
"""One layer's weights by Keras name without scope or ':0' (kernel, gamma, moving_mean, ...)."""


@dataclass(frozen=True)
class KerasLayer:
    """One node of a Keras functional model: its name, type, settings and the layers it reads."""

    name: str
    kind: str
    config: Mapping[str, Any]
    inputs: tuple[str, ...]


def read_keras_h5(path: Path) -> tuple[list[KerasLayer], dict[str, dict[str, np.ndarray]]]:
    """The layers (in saved, topological order) and per-layer weights of a Keras 2 HDF5 model."""
    with h5py.File(path, "r") as h5:
        if "model_config" not in h5.attrs:
            raise InputError(
                f"{path} holds no Keras model_config; save the whole model, not weights only"
            )
        raw = h5.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if config.get("class_name") not in {"Model", "Functional"}:
            raise InputError(
                f"{path}: only Keras functional models are supported, "
                f"not {config.get('class_name')}"
            )
        layers = [_layer_of(entry) for entry in config["config"]["layers"]]
        group = h5["model_weights"]
        weights = {
            layer.name: _weights_of(group[layer.name]) for layer in layers if layer.name in group
        }
    return layers, weights


def _layer_of(entry: Mapping[str, Any]) -> KerasLayer:
    nodes = entry.get("inbound_nodes") or [[]]
    return KerasLayer(
        entry["name"], entry["class_name"], entry["config"], tuple(n[0] for n in nodes[0])
    )


def _weights_of(group: h5py.Group) -> dict[str, np.ndarray]:
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("weight_names", [])]
    return {name.split("/")[-1].split(":")[0]: np.asarray(group[name]) for name in names}


class KerasGraph(nn.Module):
    """A Keras functional model rebuilt as torch modules (NCHW) and run in the saved layer order."""

    def __init__(self, layers: Sequence[KerasLayer], weights: Mapping[str, Weights]) -> None:
        """Build one torch module per Keras layer; load its weights with the layout transposed."""
        super().__init__()
        self.layers = tuple(layers)
        self.nodes = nn.ModuleDict(
            {layer.name: _build(layer, weights.get(layer.name, {})) for layer in layers}
        )
        # Where each layer's output is read for the last time, so it can be let go after.
        self._last_use = {
            name: step for step, layer in enumerate(self.layers) for name in layer.inputs
        }
        self.folded: set[str] = set()
        self._fold()

    def _fold(self) -> None:
        """Fold each batch norm, and a ReLU after it, into the linear convolution feeding it.

        Only where each output has that one reader. The convolution's kernel and bias absorb
        the norm's scale and shift (inference mode) and it applies the ReLU in place; the
        folded layers become pass-throughs: two passes over the activations less, the same
        outputs up to float rounding. The folded-away outputs (`folded`) cannot be asked for.
        """
        readers: dict[str, list[KerasLayer]] = {}
        for layer in self.layers:
            for name in layer.inputs:
                readers.setdefault(name, []).append(layer)
        for layer in self.layers:
            conv = self.nodes[layer.inputs[0]] if len(layer.inputs) == 1 else None
            if not (
                isinstance(self.nodes[layer.name], nn.BatchNorm2d)
                and isinstance(conv, _Conv)
                and conv.linear
                and len(readers[layer.inputs[0]]) == 1
            ):
                continue
            conv.absorb(self.nodes[layer.name])
            self.nodes[layer.name] = _Input()
            self.folded.add(layer.inputs[0])
            after = readers.get(layer.name, [])
            relu = len(after) == 1 and after[0].kind == "Activation"
            if relu and after[0].config["activation"] == "relu":
                conv.activation = F.relu_
                conv.linear = False
                self.nodes[after[0].name] = _Input()
                self.folded.add(layer.name)

    @classmethod
    def from_h5(cls, path: Path) -> KerasGraph:
        """Read a Keras 2 HDF5 model file and rebuild it, in eval mode."""
        return cls(*read_keras_h5(path)).eval()

    def forward(self, x: torch.Tensor, outputs: Sequence[str]) -> dict[str, torch.Tensor]:
        """Run the graph on an NCHW batch and return the named layers' outputs.

        A layer's output is dropped once its last reader has run: memory holds the live
        activations only, not every layer's.
        """
        if asked := self.folded.intersection(outputs):
            raise InputError(f"layer outputs {sorted(asked)} are folded into the next layers")
        values: dict[str, torch.Tensor] = {}
        for step, layer in enumerate(self.layers):
            inputs = [values[name] for name in layer.inputs] or [x]
            values[layer.name] = self.nodes[layer.name](*inputs)
            for name in layer.inputs:
                if self._last_use[name] == step and name not in outputs:
                    del values[name]
        return {name: values[name] for name in outputs}


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x,
    "relu": F.relu,
    "softmax": lambda x: torch.softmax(x, dim=1),
}


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name not in _ACTIVATIONS:
        raise InputError(
            f"Keras activation {name!r} is not supported; known: {', '.join(_ACTIVATIONS)}"
        )
    return _ACTIVATIONS[name]


class _Activation(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.fn = _activation(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class _Input(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Add(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total


class _GlobalAveragePool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class _MaxPool(nn.Module):
    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.kernel = _square(config["pool_size"], "pool_size")
        self.stride = _square(config["strides"], "strides")
        self.same = config["padding"] == "same"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.same:
            return F.max_pool2d(x, self.kernel, self.stride)
        # TensorFlow never picks a padded cell as the maximum, as torch's own padding does not;
        # an odd extra cell after (TF's rule) is torch's ceil mode. Else pad explicitly.
        (top, bottom), (left, right) = (same_pads(n, self.kernel, self.stride) for n in x.shape[2:])
        if (top, bottom) == (left, right) and bottom - top in (0, 1) and 2 * top <= self.kernel:
            return F.max_pool2d(x, self.kernel, self.stride, padding=top, ceil_mode=bottom > top)
        x = pad_same(x, self.kernel, self.stride, value=float("-inf"))
        return F.max_pool2d(x, self.kernel, self.stride)


class _Conv(nn.Module):
    """Conv2D, or SeparableConv2D (a depthwise then a pointwise convolution), with TF padding."""

    def __init__(self, config: Mapping[str, Any], weights: Weights) -> None:
        super().__init__()
        self.kernel = _square(config["kernel_size"], "kernel_size")
        self.stride = _square(config["strides"], "strides")
        self.same = config["padding"] == "same"
        if _square(config.get("dilation_rate", 1), "dilation_rate") != 1:
            raise InputError("dilated Keras convolutions are not supported")
        self.activation = _activation(config.get("activation", "linear"))
        if "depthwise_kernel" in weights:
            depthwise = weights["depthwise_kernel"]  # (kh, kw, in, multiplier)
            kh, kw, channels, multiplier = depthwise.shape
            self.depthwise: nn.Parameter | None = frozen_parameter(
                depthwise.reshape(kh, kw, channels * multiplier).transpose(2, 0, 1)[:, None]
            )
            self.groups = channels
            self.weight = frozen_parameter(weights["pointwise_kernel"].transpose(3, 2, 0, 1))
        else:
            self.depthwise = None
            self.weight = frozen_parameter(
                weights["kernel"].transpose(3, 2, 0, 1)
            )  # (kh, kw, in, out) → (out, in, kh, kw)
        self.bias = frozen_parameter(weights["bias"]) if "bias" in weights else None
        self.linear = config.get("activation", "linear") == "linear"
        # 'same' padding with stride 1 and an odd kernel is symmetric: the convolution's own.
        symmetric = self.same and self.stride == 1 and self.kernel % 2 == 1
        self.padding = self.kernel // 2 if symmetric else 0
        self.pad_first = self.same and not symmetric

    def absorb(self, norm: nn.BatchNorm2d) -> None:
        """Fold an inference-mode batch norm that reads this (linear) convolution into it."""
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        bias = self.bias if self.bias is not None else torch.zeros_like(scale)
        self.weight = nn.Parameter(self.weight * scale[:, None, None, None], requires_grad=False)
        self.bias = nn.Parameter(
            (bias - norm.running_mean) * scale + norm.bias, requires_grad=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_first:
            x = pad_same(x, self.kernel, self.stride)
        if self.depthwise is not None:
            x = F.conv2d(
                x, self.depthwise, stride=self.stride, padding=self.padding, groups=self.groups
            )
            x = F.conv2d(x, self.weight, self.bias)
        else:
            x = F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)
        return self.activation(x)


def _batch_norm(config: Mapping[str, Any], weights: Weights) -> nn.BatchNorm2d:
    if config.get("axis", -1) not in (-1, 3, [-1], [3]):
        raise InputError("Keras BatchNormalization is supported on the channel axis only")
    mean = weights["moving_mean"]
    norm = nn.BatchNorm2d(len(mean), eps=config["epsilon"])
    norm.running_mean.copy_(torch.from_numpy(mean))
    norm.running_var.copy_(torch.from_numpy(weights["moving_variance"]))
    with torch.no_grad():
        norm.weight.copy_(torch.from_numpy(weights.get("gamma", np.ones_like(mean))))
        norm.bias.copy_(torch.from_numpy(weights.get("beta", np.zeros_like(mean))))
    norm.requires_grad_(False)
    return norm.eval()


def _square(value: int | Sequence[int], what: str) -> int:
    values = [value] if isinstance(value, int) else list(value)
    if len(set(values)) != 1:
        raise InputError(f"Keras {what} {value} is not square; only square kernels are supported")
    return values[0]


def _build(layer: KerasLayer, weights: Weights) -> nn.Module:
    builders: dict[str, Callable[[], nn.Module]] = {
        "InputLayer": _Input,
        "Conv2D": lambda: _Conv(layer.config, weights),
        "SeparableConv2D": lambda: _Conv(layer.config, weights),
        "BatchNormalization": lambda: _batch_norm(layer.config, weights),
        "Activation": lambda: _Activation(layer.config["activation"]),
        "MaxPooling2D": lambda: _MaxPool(layer.config),
        "Add": _Add,
        "GlobalAveragePooling2D": _GlobalAveragePool,
    }
    if layer.kind not in builders:
        raise InputError(f"Keras layer {layer.name!r} of type {layer.kind} is not supported")
    return builders[layer.kind]()
