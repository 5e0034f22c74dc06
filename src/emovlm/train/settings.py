"""Training settings: the head, the LoRA run, and what the model is shown (light: no torch).

What a model is shown and how it answers are the recognizers' own settings fields
(`recognizers.settings`), so training and evaluation share their defaults, help and checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from emovlm.errors import InputError
from emovlm.recognizers.settings import (
    AskSettings,
    ImageSettings,
    LocalSettings,
    ModelSettings,
    ReadSettings,
    Settings,
    ShowSettings,
    SpecialistSettings,
    option,
    override,
)

DEFAULT_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
"""The language model's attention projections, LoRA's usual targets."""

SAMPLER_HELP = "instance | class-balanced | square-root | progressive"


def _check_sampler(sampler: str) -> None:
    from emovlm.train.samplers import SAMPLERS

    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")


@dataclass(frozen=True, kw_only=True)
class HeadSettings(Settings):
    """Specialist head: its kind, the class sampler, and the optimiser's settings."""

    kind: str = option("linear", "linear | temporal", flag="head_kind")
    sampler: str = option("class-balanced", SAMPLER_HELP)
    epochs: int = option(10, "passes over the training split")
    batch_size: int = option(16, "samples per optimiser step (LoRA: per forward pass)")
    learning_rate: float = option(3e-3, "AdamW learning rate")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    hidden: int = option(64, "temporal head width")
    seed: int = option(0, "seed of sampling, initialisation and bootstrap")
    allow_missing_classes: bool = option(
        False, "train even when some classes have no training samples"
    )

    def check(self) -> None:
        """Refuse unknown names and impossible numbers with one clear error."""
        from emovlm.backends.expression.heads import HEAD_KINDS

        if self.kind not in HEAD_KINDS:
            raise InputError(
                f"unknown head kind {self.kind!r}; choose one of: {', '.join(HEAD_KINDS)}"
            )
        _check_sampler(self.sampler)
        if self.epochs < 1 or self.batch_size < 1 or self.hidden < 1:
            raise InputError("--epochs, --batch-size and --hidden must each be at least 1")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise InputError("--learning-rate must be above 0 and --weight-decay 0 or more")


@dataclass(frozen=True, kw_only=True)
class LoraSettings(Settings):
    """LoRA shape, optimiser, batching and sampling settings of one fine-tuning run.

    `batch_size` examples go through the model at once; gradients of `grad_accum` such batches
    are summed before each optimiser step. The learning rate is constant.
    """

    rank: int = option(8, "LoRA rank r", flag="lora_rank")
    alpha: int = option(16, "LoRA alpha", flag="lora_alpha")
    dropout: float = option(0.05, "LoRA dropout", flag="lora_dropout")
    targets: tuple[str, ...] = option(
        DEFAULT_TARGETS, "comma-separated layer names in the language model", flag="lora_targets"
    )
    learning_rate: float = override(HeadSettings, "learning_rate", 2e-4)
    weight_decay: float = override(HeadSettings, "weight_decay", 0.0)
    epochs: int = override(HeadSettings, "epochs", 3)
    batch_size: int = override(HeadSettings, "batch_size", 1)
    grad_accum: int = option(4, "batches per optimiser step")
    max_grad_norm: float = option(1.0, "gradients are clipped to this norm")
    gradient_checkpointing: bool = option(False, "recompute activations to save memory")
    sampler: str = override(HeadSettings, "sampler", "instance")
    seed: int = override(HeadSettings, "seed", 0)

    def check(self) -> None:
        """Refuse impossible settings with one clear error."""
        _check_sampler(self.sampler)
        if min(self.rank, self.alpha, self.epochs, self.batch_size, self.grad_accum) < 1:
            raise InputError(
                "--lora-rank, --lora-alpha, --epochs, --batch-size and --grad-accum must be ≥ 1"
            )
        if not 0 <= self.dropout < 1 or self.learning_rate <= 0 or self.weight_decay < 0:
            raise InputError(
                "--lora-dropout must be in [0, 1), --learning-rate above 0, --weight-decay ≥ 0"
            )
        if not self.targets:
            raise InputError("--lora-targets needs at least one module name, e.g. q_proj,v_proj")


@dataclass(frozen=True, kw_only=True)
class FaceSettings(Settings):
    """How the specialist finds faces and which frames it reads: features and evaluation alike."""

    model: str = override(ModelSettings, "model", "fer-xception")
    faces: str = override(SpecialistSettings, "faces", "mtcnn")
    face_step: int = override(SpecialistSettings, "face_step", 10)
    min_face: float = override(SpecialistSettings, "min_face", 0.1)
    frames: str = override(SpecialistSettings, "frames", "all")
    device: str = override(SpecialistSettings, "device", "cpu")


@dataclass(frozen=True, kw_only=True)
class VLMSettings(LocalSettings, ImageSettings, ShowSettings, AskSettings, ReadSettings):
    """The base model of LoRA fine-tuning, how samples are shown to it, how it answers at evaluation.

    The fields are the VLM recognizer's (a local transformers model), plus `eval_batch_size`.
    """

    model: str = override(ModelSettings, "model", "")
    eval_batch_size: int = option(8, "samples per batch when evaluating", minimum=1)
