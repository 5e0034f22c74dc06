"""`finetune --target vlm`: LoRA on a local VLM with a class sampler, then base vs adapter side by side."""

from __future__ import annotations

import gc
from dataclasses import asdict
from functools import partial
from pathlib import Path

from emovlm.backends.transformers_vlm import TransformersVLM
from emovlm.data.base import Dataset
from emovlm.recognizers.settings import VLMSettings as RecognizerSettings
from emovlm.recognizers.vlm import VLMRecognizer
from emovlm.train.instructions import ViewBuilder
from emovlm.train.lora import LoraTrainer
from emovlm.train.runfolder import (
    FinetuneSummary,
    evaluate_variants,
    prepare_run_folder,
    training_split,
    write_training_log,
)
from emovlm.train.settings import LoraSettings, VLMSettings
from emovlm.train.trainset import label_counts


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
    samples, splits = training_split(
        train_data,
        eval_data,
        limit=train_limit,
        seed=seed,
        allow_missing_classes=allow_missing_classes,
    )
    space = train_data.label_space
    builder = ViewBuilder(space, vlm)
    backend = TransformersVLM(vlm.model, device=vlm.device, dtype=vlm.dtype)
    trainer = LoraTrainer(backend, builder, lora)
    run_dir = Path(run_dir)
    prepare_run_folder(
        run_dir,
        {
            "target": "vlm",
            **splits,
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
            vlm.pick(
                RecognizerSettings, adapter=adapter, concurrency=vlm.eval_batch_size, cache=False
            ),
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
