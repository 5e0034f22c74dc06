"""`finetune --target vlm`: LoRA on a local VLM with a class sampler, then base vs adapter side by side."""

from __future__ import annotations

import gc
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from emovlm.backends.transformers_vlm import TransformersVLM
from emovlm.data.base import Dataset
from emovlm.errors import InputError
from emovlm.recognizers.vlm import VLMRecognizer
from emovlm.train.instructions import ViewBuilder
from emovlm.train.lora import LoraSettings, LoraTrainer
from emovlm.train.runfolder import (
    FinetuneSummary,
    choose_training_samples,
    evaluate_variants,
    prepare_run_folder,
    write_training_log,
)
from emovlm.train.trainset import check_classes, label_counts, labelled_samples


@dataclass(frozen=True)
class VLMSettings:
    """The base model, how samples are shown to it, and how it answers at evaluation."""

    model: str
    frames: str = "uniform:8"
    faces: str = "none"
    face_step: int = 5
    prompt: str | None = None
    image_size: int = 448
    person: str = "box"
    max_labels: int = 6
    device: str = "cpu"
    dtype: str = "float32"
    mode: str = "generate"
    max_new_tokens: int = 16
    eval_batch_size: int = 8

    def view_options(self) -> dict[str, object]:
        """The settings that decide what the model is shown (shared by training and evaluation)."""
        return {
            "frames": self.frames,
            "faces": self.faces,
            "face_step": self.face_step,
            "prompt": self.prompt,
            "image_size": self.image_size,
            "person": self.person,
            "max_labels": self.max_labels,
            "device": self.device,
        }


def finetune_vlm(
    train_data: Dataset,
    eval_data: Dataset | None,
    run_dir: Path,
    *,
    vlm: VLMSettings,
    lora: LoraSettings,
    allow_missing_classes: bool = False,
    train_limit: int | None = None,
    resume: bool = False,
    progress: bool = True,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> FinetuneSummary:
    """Train a LoRA adapter with `lora.sampler`, then evaluate the base model and the adapter on `eval_data`."""
    lora.check()
    if eval_data is not None and eval_data.label_space != train_data.label_space:
        raise InputError(
            f"training split uses label set {train_data.label_space.name!r} but the evaluation "
            f"split {eval_data.label_space.name!r}; use one label set for both"
        )
    space = train_data.label_space
    samples = choose_training_samples(labelled_samples(train_data), train_limit, seed)
    check_classes([s.labels for s in samples], space, allow_missing_classes=allow_missing_classes)
    builder = ViewBuilder(space, **vlm.view_options())
    backend = TransformersVLM(vlm.model, device=vlm.device, dtype=vlm.dtype)
    trainer = LoraTrainer(backend, builder, lora)
    run_dir = Path(run_dir)
    prepare_run_folder(
        run_dir,
        {
            "target": "vlm",
            "train": {**train_data.config(), "limit": train_limit, "seed": seed},
            "eval": eval_data.config() if eval_data is not None else None,
            "vlm": asdict(vlm),
            "lora": asdict(lora),
            "allow_missing_classes": allow_missing_classes,
        },
        resume=resume,
    )
    result = trainer.train(samples, run_dir, resume=resume, progress=progress)
    del trainer, backend  # free the trained model before two more are loaded for evaluation
    gc.collect()
    summary = FinetuneSummary(run_dir, outputs={"adapter": result.adapter})
    summary.logs[f"lora ({lora.sampler})"] = result.log
    summary.files["training_log"] = write_training_log(run_dir, summary.logs)
    if eval_data is None:
        return summary
    recognizers = {
        variant: partial(
            VLMRecognizer,
            space,
            backend="transformers",
            model=vlm.model,
            adapter=adapter,
            dtype=vlm.dtype,
            mode=vlm.mode,
            max_new_tokens=vlm.max_new_tokens,
            concurrency=vlm.eval_batch_size,
            cache=False,
            **vlm.view_options(),
        )
        for variant, adapter in (("base", None), ("adapter", str(result.adapter)))
    }
    return evaluate_variants(
        summary,
        eval_data,
        recognizers,
        train_counts=label_counts([s.labels for s in samples], space),
        title=f"{space.name}: per-class recall, base model vs LoRA adapter ({lora.sampler} sampler)",
        resume=resume,
        progress=progress,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
