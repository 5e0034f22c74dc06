"""Decoupled re-training of the specialist: a new head on frozen face features, with any class sampler.

The expression network stays frozen (its features are extracted once, see `features.py`); only a
small head is trained, in the dataset's own label space, so labels the pretrained classifier
cannot output (MAFW's contempt, anxiety, helplessness, disappointment) become reachable. The
class sampler decides how often each class is seen (Kang et al. 2020: instance sampling learns
the long tail's priors, class-balanced sampling evens them out).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emovlm.backends.expression.heads import Head, build_head, clip_probabilities
from emovlm.errors import InputError
from emovlm.labels import LabelSpace
from emovlm.train.features import FrameFeatures
from emovlm.train.progress import TrainingProgress
from emovlm.train.samplers import make_sampler
from emovlm.train.settings import HeadSettings
from emovlm.train.trainset import check_classes, label_counts


@dataclass
class TrainedHead:
    """A trained head and its training log (one entry per epoch: loss, seconds, classes drawn)."""

    head: Head
    log: list[dict[str, Any]] = field(default_factory=list)


def train_head(
    features: Sequence[FrameFeatures],
    labels: Sequence[Sequence[str]],
    label_space: LabelSpace,
    settings: HeadSettings,
    *,
    feature_settings: Mapping[str, Any],
    progress: bool = False,
) -> TrainedHead:
    """Train a head on samples' frame features and gold labels; same inputs and seed, same head.

    `feature_settings` (expression model, face and frame settings) are recorded in the head so it
    is used with the features it was trained on.
    """
    settings.check()
    if len(features) != len(labels):
        raise InputError(f"{len(features)} feature sequences but {len(labels)} label sets")
    missing = check_classes(
        labels, label_space, allow_missing_classes=settings.allow_missing_classes
    )
    sampler = make_sampler(settings.sampler, labels, label_space, settings.epochs)
    sequences = [torch.from_numpy(np.asarray(f.features, dtype=np.float32)) for f in features]
    targets = _targets(labels, label_space)
    torch.manual_seed(settings.seed)
    module = build_head(settings.kind, sequences[0].shape[1], len(label_space), settings.hidden)
    module.set_statistics(torch.cat(sequences))
    module.trained.copy_(targets.sum(dim=0) > 0)
    optimiser = torch.optim.AdamW(
        module.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    steps_per_epoch = -(-len(sequences) // settings.batch_size)
    log: list[dict[str, Any]] = []
    title = f"{settings.kind} head · {settings.sampler}"
    with TrainingProgress(title, steps_per_epoch * settings.epochs, 0, progress) as bar:
        for epoch in range(settings.epochs):
            started = time.perf_counter()
            order = sampler.draw(epoch, np.random.default_rng([settings.seed, epoch]))
            module.train()
            losses = []
            for start in range(0, len(order), settings.batch_size):
                chosen = order[start : start + settings.batch_size]
                batch, lengths = _padded([sequences[i] for i in chosen])
                probs = clip_probabilities(module(batch, lengths), lengths, label_space.multi_label)
                loss = _loss(probs, targets[chosen], label_space.multi_label)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
                bar.step(epoch + 1, losses[-1])
            drawn = np.bincount(sampler.sample_class[order], minlength=len(label_space))
            log.append(
                {
                    "epoch": epoch + 1,
                    "loss": float(np.mean(losses)),
                    "seconds": round(time.perf_counter() - started, 4),
                    "drawn": dict(zip(label_space.labels, drawn.tolist(), strict=True)),
                }
            )
    meta = {
        "label_set": label_space.name,
        "labels": list(label_space.labels),
        "multi_label": label_space.multi_label,
        "model": feature_settings["model"],
        "feature_size": int(sequences[0].shape[1]),
        "kind": settings.kind,
        "hidden": settings.hidden,
        "untrained_labels": list(missing),
        "train_counts": label_counts(labels, label_space),
        "settings": {**asdict(settings), **feature_settings},
    }
    return TrainedHead(Head(module.eval(), meta), log)


def _targets(labels: Sequence[Sequence[str]], label_space: LabelSpace) -> torch.Tensor:
    """(N, L) 0/1 targets: one label per sample, or several for multi-label spaces."""
    targets = torch.zeros(len(labels), len(label_space))
    for i, names in enumerate(labels):
        targets[i, [label_space.index(n) for n in names]] = 1.0
    return targets


def _padded(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences (T_i, D) zero-padded into (B, max T, D), with their lengths."""
    lengths = torch.tensor([len(s) for s in sequences])
    batch = torch.zeros(len(sequences), int(lengths.max()), sequences[0].shape[1])
    for i, sequence in enumerate(sequences):
        batch[i, : len(sequence)] = sequence
    return batch, lengths


def _loss(probs: torch.Tensor, targets: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Cross-entropy of clip probabilities: categorical, or per label (binary) when multi-label."""
    if multi_label:
        return F.binary_cross_entropy(probs.clamp(1e-6, 1 - 1e-6), targets)
    chosen = (probs * targets).sum(dim=1)
    return -torch.log(chosen.clamp_min(1e-8)).mean()
