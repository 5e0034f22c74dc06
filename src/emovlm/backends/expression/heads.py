"""Classifier heads over frozen per-frame face features, and the one-file format they are saved in.

A head turns a clip's sequence of face features (T, D) into per-frame label logits (T, L) in a
dataset's own label space. The `linear` head scores each frame alone (decoupled classifier
re-training); the `temporal` head reads the whole sequence with a bidirectional GRU first, so
frame order can change its answer. A clip's probabilities are the mean of its per-frame
probabilities (softmax, or sigmoid for multi-label spaces), the same as `--aggregate mean`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from emovlm.errors import InputError
from emovlm.labels import LabelSpace

HEAD_KINDS: tuple[str, ...] = ("linear", "temporal")
"""Head kinds users pass to --head-kind."""
HEAD_FORMAT = "emovlm-head"
HEAD_VERSION = 1


class FrameHead(nn.Module):
    """Per-frame label logits from padded feature sequences, after standardising the features.

    `mean` and `std` are the training features' statistics and `trained` marks the labels that
    had training samples; all three are buffers, so a saved head carries them. Labels without
    samples get logit -inf: probability 0, like labels a pretrained classifier cannot output.
    """

    def __init__(self, feature_size: int, n_labels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(feature_size))
        self.register_buffer("std", torch.ones(feature_size))
        self.register_buffer("trained", torch.ones(n_labels, dtype=torch.bool))

    def set_statistics(self, features: torch.Tensor) -> None:
        """Standardise with the mean and spread of these training features (N, D)."""
        self.mean.copy_(features.mean(dim=0))
        self.std.copy_(features.std(dim=0).clamp_min(1e-6))

    def standardised(self, features: torch.Tensor) -> torch.Tensor:
        """Features shifted and scaled by the training statistics."""
        return (features - self.mean) / self.std

    def masked(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits with the labels that had no training samples set to -inf."""
        return logits.masked_fill(~self.trained, float("-inf"))


class LinearHead(FrameHead):
    """One linear layer applied to each frame's features on its own."""

    def __init__(self, feature_size: int, n_labels: int, hidden: int = 0) -> None:
        super().__init__(feature_size, n_labels)
        self.classify = nn.Linear(feature_size, n_labels)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, L) for features (B, T, D); `lengths` are ignored (frames are independent)."""
        return self.masked(self.classify(self.standardised(features)))


class TemporalHead(FrameHead):
    """A projection, a bidirectional GRU over the frame sequence, and a linear layer per frame."""

    def __init__(self, feature_size: int, n_labels: int, hidden: int = 64) -> None:
        super().__init__(feature_size, n_labels)
        self.project = nn.Sequential(nn.Linear(feature_size, hidden), nn.GELU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.classify = nn.Linear(2 * hidden, n_labels)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, L) for features (B, T, D) whose first `lengths[b]` frames are real."""
        projected = self.project(self.standardised(features))
        packed = pack_padded_sequence(
            projected, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        context, _ = self.gru(packed)
        padded, _ = pad_packed_sequence(context, batch_first=True, total_length=features.shape[1])
        return self.masked(self.classify(padded))


_MODULES: dict[str, type[FrameHead]] = {"linear": LinearHead, "temporal": TemporalHead}


def build_head(kind: str, feature_size: int, n_labels: int, hidden: int = 64) -> FrameHead:
    """A freshly initialised head of `kind` (linear | temporal)."""
    if kind not in _MODULES:
        raise InputError(f"unknown head kind {kind!r}; choose one of: {', '.join(HEAD_KINDS)}")
    return _MODULES[kind](feature_size, n_labels, hidden)


def frame_probabilities(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Per-frame probabilities: softmax over labels, or one sigmoid per label when multi-label."""
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)


def clip_probabilities(
    logits: torch.Tensor, lengths: torch.Tensor, multi_label: bool
) -> torch.Tensor:
    """(B, L) clip probabilities: the mean of each clip's per-frame probabilities over its real frames."""
    mask = torch.arange(logits.shape[1])[None, :] < lengths[:, None]
    probs = frame_probabilities(logits, multi_label) * mask[..., None]
    return probs.sum(dim=1) / lengths[:, None].to(probs.dtype)


@dataclass
class Head:
    """A trained head with what is needed to use it: its label space, expression model and settings.

    `meta` holds: label_set, labels, multi_label, model (expression model name), feature_size,
    kind, hidden, untrained_labels (labels without training samples), and settings (sampler,
    epochs, face and frame settings, seeds, training counts).
    """

    module: FrameHead
    meta: Mapping[str, Any]

    @property
    def labels(self) -> tuple[str, ...]:
        """The label names the head outputs, in its output order."""
        return tuple(self.meta["labels"])

    @property
    def model_name(self) -> str:
        """The expression model whose features the head reads."""
        return str(self.meta["model"])

    @property
    def untrained_labels(self) -> tuple[str, ...]:
        """Labels that had no training samples (the head can hardly ever output them)."""
        return tuple(self.meta.get("untrained_labels", ()))

    @property
    def multi_label(self) -> bool:
        """True when each label has its own sigmoid probability."""
        return bool(self.meta["multi_label"])

    def check_fits(self, label_space: LabelSpace, model: str) -> None:
        """Refuse a label space or expression model other than the ones the head was trained for."""
        if tuple(label_space.labels) != self.labels:
            raise InputError(
                f"the head was trained for label set {self.meta['label_set']!r} "
                f"({', '.join(self.labels)}), not {label_space.name!r}; evaluate it on a dataset "
                "of that label set or train a head for this one"
            )
        if model != self.model_name:
            raise InputError(
                f"the head reads features of expression model {self.model_name!r}, not {model!r}; "
                f"drop --model or pass --model {self.model_name}"
            )

    def frame_probs(self, features: np.ndarray) -> np.ndarray:
        """Per-frame label probabilities (T, L) float32 for one clip's features (T, D) in time order."""
        tensor = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))[None]
        self.module.eval()
        with torch.inference_mode():
            logits = self.module(tensor, torch.tensor([tensor.shape[1]]))
        return frame_probabilities(logits[0], self.multi_label).numpy()

    def save(self, path: Path) -> Path:
        """Write the head (weights + JSON metadata) to one file that `load_head` reads back."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "format": HEAD_FORMAT,
                "version": HEAD_VERSION,
                "meta_json": json.dumps(dict(self.meta), sort_keys=True),
                "state_dict": self.module.state_dict(),
            },
            path,
        )
        return path

    @cached_property
    def _digest(self) -> str:
        digest = hashlib.sha256(json.dumps(dict(self.meta), sort_keys=True).encode())
        for name, tensor in sorted(self.module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
        return digest.hexdigest()

    def fingerprint(self) -> str:
        """SHA-256 of the metadata and weights: what identifies the head's answers."""
        return self._digest


def load_head(path: str | Path) -> Head:
    """Read a head file written by `Head.save` (weights only: no code is unpickled)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"head file {path} does not exist; train one with `emovlm finetune`")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a foreign file
        raise InputError(
            f"{path} is not an emovlm head file ({type(exc).__name__}); "
            "pass the head.pt that `emovlm finetune --target specialist` wrote"
        ) from None
    if not isinstance(saved, dict) or saved.get("format") != HEAD_FORMAT:
        raise InputError(f"{path} is not an emovlm head file; pass the head.pt of a finetune run")
    if saved.get("version") != HEAD_VERSION:
        raise InputError(
            f"{path} is head format version {saved.get('version')}; this emovlm reads version "
            f"{HEAD_VERSION}; retrain the head with this version"
        )
    meta = json.loads(saved["meta_json"])
    module = build_head(
        meta["kind"], int(meta["feature_size"]), len(meta["labels"]), int(meta["hidden"])
    )
    module.load_state_dict(saved["state_dict"])
    return Head(module.eval(), meta)
