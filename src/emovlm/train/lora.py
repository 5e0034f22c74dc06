"""LoRA fine-tuning of a local VLM (transformers + peft) on instruction samples, resumable per epoch.

The model and processor are loaded, and each question is encoded, by the `transformers` backend
itself, so the adapter learns on token for token the prompt it is evaluated on; the answer's
tokens (as the model's chat template writes an assistant turn, ending with the end-of-turn
token) are appended, and the loss is on those answer tokens only. A checkpoint (adapter +
optimiser state + log) is written after every epoch; `resume=True` continues from the latest.
Per-epoch seeds make a resumed training equal to an uninterrupted one.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emovlm.backends.transformers_vlm import TransformersVLM
from emovlm.errors import InputError, MediaError, MissingDependencyError
from emovlm.train.instructions import View, ViewBuilder, answer_text
from emovlm.train.progress import TrainingProgress
from emovlm.train.samplers import make_sampler
from emovlm.train.settings import LoraSettings
from emovlm.types import Sample

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.pt"
_IGNORE = -100  # label of tokens without loss (prompt and padding)


@dataclass
class LoraResult:
    """Where the final adapter is, the per-epoch log, and the epoch training resumed after (0: none)."""

    adapter: Path
    log: list[dict[str, Any]] = field(default_factory=list)
    resumed_after: int = 0


def language_model_targets(model: torch.nn.Module, names: Sequence[str]) -> list[str]:
    """Full names of the linear layers called `names` inside the language model (all, if none is).

    Vision towers use the same projection names (CLIP's q_proj), so LoRA is scoped to the modules
    under a `language_model` when the architecture has one.
    """
    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    scoped = [n for n in linear if ".language_model." in f".{n}."] or linear
    wanted = re.compile(rf"(^|\.)({'|'.join(re.escape(t) for t in names)})$")
    found = [n for n in scoped if wanted.search(n)]
    if not found:
        suffixes = sorted({n.rsplit(".", 1)[-1] for n in scoped})
        raise InputError(
            f"no linear layer named {', '.join(names)} in the language model; "
            f"its layers are named: {', '.join(suffixes)}"
        )
    return found


class LoraTrainer:
    """Train a LoRA adapter for the model behind a `transformers` VLM backend."""

    def __init__(self, vlm: TransformersVLM, builder: ViewBuilder, settings: LoraSettings) -> None:
        settings.check()
        if vlm.adapter is not None:
            raise InputError("start LoRA training from the base model, without --adapter")
        try:
            import peft  # noqa: F401 - checked here so the error names the fix
        except ImportError as exc:
            raise MissingDependencyError(
                "LoRA fine-tuning needs peft; run: pip install 'emovlm[vlm]'"
            ) from exc
        self.vlm, self.builder, self.settings = vlm, builder, settings

    def train(
        self,
        samples: Sequence[Sample],
        out_dir: Path,
        *,
        resume: bool = False,
        progress: bool = False,
    ) -> LoraResult:
        """Fine-tune on `samples`, checkpoint every epoch under `out_dir`, save `out_dir`/adapter."""
        from peft import LoraConfig, get_peft_model

        settings, space = self.settings, self.builder.label_space
        answers = [answer_text(s.labels, space) for s in samples]
        sampler = make_sampler(
            settings.sampler, [s.labels for s in samples], space, settings.epochs
        )
        checkpoint = _latest_checkpoint(Path(out_dir), settings) if resume else None
        if not resume and (Path(out_dir) / CHECKPOINTS).is_dir():
            raise InputError(
                f"{out_dir} already holds checkpoints; pass --resume to continue them "
                "or choose another --run-dir"
            )
        loaded = self.vlm.load_model()
        model = loaded.model
        if settings.gradient_checkpointing:
            _enable_checkpointing(model)
        torch.manual_seed(settings.seed)
        config = LoraConfig(
            r=settings.rank,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=language_model_targets(model, settings.targets),
            bias="none",
        )
        model = get_peft_model(model, config)
        optimiser = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=settings.learning_rate,
            weight_decay=settings.weight_decay,
        )
        log: list[dict[str, Any]] = []
        start_epoch = 0
        if checkpoint is not None:
            start_epoch, log = _restore(checkpoint, model, optimiser)
        step = _Step(self.vlm, loaded, model, optimiser, settings)
        steps = -(-len(samples) // settings.batch_size)
        with TrainingProgress(
            "LoRA", steps * settings.epochs, steps * start_epoch, progress
        ) as bar:
            for epoch in range(start_epoch, settings.epochs):
                rng = np.random.default_rng([settings.seed, epoch])
                torch.manual_seed(int(rng.integers(2**31)))
                order = sampler.draw(epoch, rng)
                model.train()
                log.append(self._epoch(step, samples, answers, order, bar, epoch + 1))
                _save_checkpoint(Path(out_dir), epoch + 1, model, optimiser, log, settings)
        adapter = Path(out_dir) / "adapter"
        model.save_pretrained(adapter)
        return LoraResult(adapter, log, start_epoch)

    def _epoch(
        self,
        step: _Step,
        samples: Sequence[Sample],
        answers: Sequence[str],
        order: np.ndarray,
        bar: TrainingProgress,
        epoch: int,
    ) -> dict[str, Any]:
        """Train on the samples in `order`, batch by batch; returns the epoch's log entry."""
        started = time.perf_counter()
        size = self.settings.batch_size
        losses: list[float] = []
        skipped = 0
        for begin in range(0, len(order), size):
            views = []
            for i in order[begin : begin + size]:
                try:
                    views.append((self.builder.view(samples[i]), answers[i]))
                except MediaError:
                    skipped += 1
            if views:
                losses.append(step.forward(views))
                bar.step(epoch, losses[-1])
            due = bool(views) and len(losses) % self.settings.grad_accum == 0
            if due or begin + size >= len(order):
                step.update()
        return {
            "epoch": epoch,
            "loss": float(np.mean(losses)) if losses else None,
            "examples": len(order) - skipped,
            "skipped": skipped,
            "seconds": round(time.perf_counter() - started, 3),
        }


class _Step:
    """Forward and backward passes over batches of questions, and optimiser updates."""

    def __init__(
        self,
        vlm: TransformersVLM,
        loaded: Any,
        model: Any,
        optimiser: torch.optim.Optimizer,
        settings: LoraSettings,
    ) -> None:
        self.vlm, self.loaded, self.model = vlm, loaded, model
        self.optimiser, self.settings = optimiser, settings
        self.answer_ids = _AnswerTokens(loaded.processor, loaded.model)
        optimiser.zero_grad()

    def forward(self, views: list[tuple[View, str]]) -> float:
        """Accumulate the gradient of one batch's answer-token loss; returns the loss."""
        examples = [
            _with_answer(self.vlm.encode(self.loaded, [view.request()]), self.answer_ids(answer))
            for view, answer in views
        ]
        batch = _collate(examples, self.loaded.processor.tokenizer.pad_token_id)
        loss = self.model(**batch.to(self.vlm.device), use_cache=False).loss
        (loss / self.settings.grad_accum).backward()
        return loss.item()

    def update(self) -> None:
        """Clip the accumulated gradients, take an optimiser step and clear them."""
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        torch.nn.utils.clip_grad_norm_(trainable, self.settings.max_grad_norm)
        self.optimiser.step()
        self.optimiser.zero_grad()


def _enable_checkpointing(model: Any) -> None:
    """Recompute activations in the backward pass (the newer transformers name first)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


class _AnswerTokens:
    """Token ids of an answer as the chat template writes an assistant turn, ending at end-of-turn."""

    def __init__(self, processor: Any, model: Any) -> None:
        self.tokenizer = processor.tokenizer
        self.processor = processor
        stops = model.generation_config.eos_token_id
        stops = [stops] if isinstance(stops, int) else list(stops or [])
        self.stops = {*stops, self.tokenizer.eos_token_id}

    def __call__(self, answer: str) -> torch.Tensor:
        """The answer's ids up to and including the first end token (one is appended if missing)."""
        user = {"role": "user", "content": [{"type": "text", "text": "?"}]}
        reply = {"role": "assistant", "content": [{"type": "text", "text": answer}]}
        prompt = self.processor.apply_chat_template(
            [user], add_generation_prompt=True, tokenize=False
        )
        full = self.processor.apply_chat_template([user, reply], tokenize=False)
        text = full[len(prompt) :] if full.startswith(prompt) else answer
        ids = self.tokenizer(text.rstrip(), add_special_tokens=False)["input_ids"]
        ends = [k for k, token in enumerate(ids) if token in self.stops]
        ids = ids[: ends[0] + 1] if ends else [*ids, self.tokenizer.eos_token_id]
        return torch.tensor(ids)


@dataclass
class _Example:
    """One encoded example: token rows (ids, mask, labels, …) and the media tensors beside them."""

    tokens: dict[str, torch.Tensor]
    media: dict[str, torch.Tensor]


def _with_answer(prompt: Any, answer: torch.Tensor) -> _Example:
    """The encoded prompt (a batch of one) with the answer appended; labels only on the answer."""
    n_prompt = prompt["input_ids"].shape[1]
    example = _Example({}, {})
    for key, value in prompt.items():
        if _is_per_token(key, value, n_prompt):
            fill = int(key == "attention_mask")
            tail = answer if key == "input_ids" else torch.full_like(answer, fill)
            example.tokens[key] = torch.cat([value[0].cpu(), tail.to(value.dtype)])
        else:
            example.media[key] = value
    example.tokens["labels"] = torch.cat([torch.full((n_prompt,), _IGNORE), answer])
    return example


def _is_per_token(key: str, value: Any, length: int) -> bool:
    return (
        isinstance(value, torch.Tensor)
        and value.shape == (1, length)
        and (key.endswith("_ids") or key.endswith("_mask"))
    )


def _collate(examples: list[_Example], pad_id: int) -> Any:
    """Left-pad the examples' token rows to one length; join their media tensors along dim 0."""
    from transformers import BatchFeature

    width = max(len(e.tokens["input_ids"]) for e in examples)
    batch: dict[str, torch.Tensor] = {}
    for key, first in examples[0].tokens.items():
        fill = {"input_ids": pad_id, "labels": _IGNORE}.get(key, 0)
        batch[key] = torch.stack(
            [
                torch.cat(
                    [
                        torch.full((width - len(e.tokens[key]),), fill, dtype=first.dtype),
                        e.tokens[key],
                    ]
                )
                for e in examples
            ]
        )
    for key in dict.fromkeys(k for e in examples for k in e.media):
        batch[key] = torch.cat([e.media[key] for e in examples if key in e.media])
    return BatchFeature(batch)


def _save_checkpoint(
    out_dir: Path,
    epoch: int,
    model: Any,
    optimiser: torch.optim.Optimizer,
    log: list[dict[str, Any]],
    settings: LoraSettings,
) -> None:
    folder = out_dir / CHECKPOINTS / f"epoch-{epoch:03d}"
    model.save_pretrained(folder)
    torch.save(
        {
            "epoch": epoch,
            "optimizer": optimiser.state_dict(),
            "log_json": json.dumps(log),
            "settings_json": json.dumps(asdict(settings), sort_keys=True),
        },
        folder / STATE_FILE,
    )


def _latest_checkpoint(out_dir: Path, settings: LoraSettings) -> Path | None:
    """The newest complete checkpoint folder, refusing one written with other settings."""
    folders = sorted(
        p for p in (out_dir / CHECKPOINTS).glob("epoch-*") if (p / STATE_FILE).is_file()
    )
    if not folders:
        return None
    state = torch.load(folders[-1] / STATE_FILE, map_location="cpu", weights_only=True)
    saved = json.loads(state["settings_json"])
    ours = json.loads(json.dumps(asdict(settings), sort_keys=True))
    changed = {k for k in ours if k != "epochs" and saved.get(k) != ours[k]}
    if changed:
        raise InputError(
            f"{folders[-1]} was trained with other settings ({', '.join(sorted(changed))}); "
            "resume with the same settings (only --epochs may grow) or choose another --run-dir"
        )
    return folders[-1]


def _restore(
    folder: Path, model: Any, optimiser: torch.optim.Optimizer
) -> tuple[int, list[dict[str, Any]]]:
    """Load a checkpoint's adapter weights and optimiser state; returns (epochs done, log)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
    state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    optimiser.load_state_dict(state["optimizer"])
    return int(state["epoch"]), json.loads(state["log_json"])
