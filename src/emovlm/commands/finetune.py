"""`emovlm finetune`: re-train the specialist's head or LoRA-tune a VLM, then compare per-class recall."""

from __future__ import annotations

import typing
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from emovlm.commands._dataset_options import (
    DATA_PANEL,
    DatasetName,
    DatasetOptionPairs,
    DatasetRoot,
    Fold,
    LabelSet,
    parse_pairs,
)
from emovlm.errors import InputError

_TRAIN = "Training (both targets)"
_SPECIALIST = "Specialist head [--target specialist]"
_VLM = "LoRA [--target vlm]"
_RUN = "Run"

TARGETS = ("specialist", "vlm")


def open_split(
    dataset: str | None,
    root: Path | None,
    split: str,
    *,
    fold: int | None,
    label_set: str | None,
    dataset_option: list[str] | None,
) -> Any:
    """Open one split of a dataset from the command-line flags shared by finetune and export."""
    from emovlm.data.base import open_dataset

    if not dataset or root is None:
        raise InputError("give --dataset and --root")
    options = parse_pairs(dataset_option, "--dataset-option")
    if label_set:
        options["label_set"] = label_set
    return open_dataset(dataset, root, split=split, fold=fold or 1, **options)


def finetune_command(
    dataset: DatasetName = None,
    root: DatasetRoot = None,
    train_split: Annotated[
        str, typer.Option(help="split to train on", rich_help_panel=DATA_PANEL)
    ] = "train",
    split: Annotated[
        str, typer.Option(help="split to evaluate on after training", rich_help_panel=DATA_PANEL)
    ] = "test",
    fold: Fold = None,
    label_set: LabelSet = None,
    dataset_option: DatasetOptionPairs = None,
    train_limit: Annotated[
        int | None,
        typer.Option(
            help="train on N samples drawn at random (seeded)", rich_help_panel=DATA_PANEL
        ),
    ] = None,
    target: Annotated[
        str,
        typer.Option(
            help="specialist (head on frozen features) | vlm (LoRA)", rich_help_panel=_TRAIN
        ),
    ] = "specialist",
    sampler: Annotated[
        str,
        typer.Option(
            help="instance | class-balanced | square-root | progressive", rich_help_panel=_TRAIN
        ),
    ] = "class-balanced",
    epochs: Annotated[
        int | None, typer.Option(help="(default: specialist 10, vlm 3)", rich_help_panel=_TRAIN)
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="(default: specialist 16, vlm 1)", rich_help_panel=_TRAIN)
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(help="(default: specialist 3e-3, vlm 2e-4)", rich_help_panel=_TRAIN),
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="AdamW weight decay", rich_help_panel=_TRAIN)
    ] = None,
    seed: Annotated[
        int,
        typer.Option(help="seed of sampling, initialisation and bootstrap", rich_help_panel=_TRAIN),
    ] = 0,
    allow_missing_classes: Annotated[
        bool,
        typer.Option(
            help="train even when some classes have no training samples", rich_help_panel=_TRAIN
        ),
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            help="specialist: fer-xception | faceapi; vlm: base model folder (required)",
            rich_help_panel=_TRAIN,
        ),
    ] = None,
    frames: Annotated[
        str | None,
        typer.Option(
            help="frame sampler (default: specialist all, vlm uniform:8)", rich_help_panel=_TRAIN
        ),
    ] = None,
    faces: Annotated[
        str | None,
        typer.Option(
            help="mtcnn | haar | none (default: specialist mtcnn, vlm none)", rich_help_panel=_TRAIN
        ),
    ] = None,
    face_step: Annotated[
        int | None, typer.Option(help="detect faces every N-th frame", rich_help_panel=_TRAIN)
    ] = None,
    device: Annotated[
        str, typer.Option(help="torch device, e.g. cpu or cuda", rich_help_panel=_TRAIN)
    ] = "cpu",
    head_kind: Annotated[
        str | None,
        typer.Option(help="linear | temporal (default: linear)", rich_help_panel=_SPECIALIST),
    ] = None,
    hidden: Annotated[
        int | None,
        typer.Option(help="temporal head width (default: 64)", rich_help_panel=_SPECIALIST),
    ] = None,
    min_face: Annotated[
        float | None,
        typer.Option(
            help="smallest face as a share of the shorter side (mtcnn)", rich_help_panel=_SPECIALIST
        ),
    ] = None,
    feature_cache: Annotated[
        Path | None,
        typer.Option(
            help="feature cache folder (default: emovlm cache/features)",
            rich_help_panel=_SPECIALIST,
        ),
    ] = None,
    lora_rank: Annotated[
        int | None, typer.Option(help="LoRA rank r (default: 8)", rich_help_panel=_VLM)
    ] = None,
    lora_alpha: Annotated[
        int | None, typer.Option(help="LoRA alpha (default: 16)", rich_help_panel=_VLM)
    ] = None,
    lora_dropout: Annotated[
        float | None, typer.Option(help="LoRA dropout (default: 0.05)", rich_help_panel=_VLM)
    ] = None,
    lora_targets: Annotated[
        str | None,
        typer.Option(
            help="comma-separated layer names in the language model (default: q_proj,k_proj,v_proj,o_proj)",
            rich_help_panel=_VLM,
        ),
    ] = None,
    grad_accum: Annotated[
        int | None,
        typer.Option(help="batches per optimiser step (default: 4)", rich_help_panel=_VLM),
    ] = None,
    gradient_checkpointing: Annotated[
        bool | None,
        typer.Option(help="recompute activations to save memory", rich_help_panel=_VLM),
    ] = None,
    dtype: Annotated[
        str | None, typer.Option(help="float32 | bfloat16 | float16", rich_help_panel=_VLM)
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(help="longest image side (default: 448)", rich_help_panel=_VLM)
    ] = None,
    prompt: Annotated[
        str | None, typer.Option(help="prompt template name or file", rich_help_panel=_VLM)
    ] = None,
    person: Annotated[
        str | None, typer.Option(help="box | crop (EMOTIC's person)", rich_help_panel=_VLM)
    ] = None,
    max_labels: Annotated[
        int | None, typer.Option(help="k of 'up to k labels' prompts", rich_help_panel=_VLM)
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="evaluation: generate | score", rich_help_panel=_VLM)
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="longest answer at evaluation", rich_help_panel=_VLM)
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="run folder (default: runs/finetune-DATASET-TARGET-SAMPLER)", rich_help_panel=_RUN
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="continue a run folder (LoRA from its last checkpoint)", rich_help_panel=_RUN
        ),
    ] = False,
    evaluate: Annotated[
        bool,
        typer.Option(
            "--eval/--no-eval", help="evaluate on --split after training", rich_help_panel=_RUN
        ),
    ] = True,
    bootstrap: Annotated[
        int, typer.Option(help="bootstrap resamples", rich_help_panel=_RUN)
    ] = 1000,
    progress: Annotated[bool, typer.Option(help="show progress bars", rich_help_panel=_RUN)] = True,
) -> None:
    """Fine-tune on a dataset's training split and compare per-class recall on its test split.

    --target specialist freezes the expression network, extracts face features once (cached),
    and trains a head in the dataset's own label space twice: with natural (instance) sampling
    and with --sampler. --target vlm trains a LoRA adapter for a local VLM with --sampler and
    compares it with the base model. The run folder holds finetune.yaml, the heads or the
    adapter (+ checkpoints/), training_log.json, eval/ (full reports) and comparison.md.

    Examples:
      emovlm finetune --target specialist --dataset mafw --root /data/MAFW --sampler class-balanced
      emovlm eval --dataset mafw --root /data/MAFW --head runs/finetune-mafw-specialist-class-balanced/heads/class-balanced.pt
      emovlm finetune --target vlm --dataset emotic --root /data/EMOTIC --model ./Qwen2-VL-2B-Instruct \\
          --train-limit 100 --epochs 3 --gradient-checkpointing --dtype bfloat16 --device cuda
    """
    given = {k: v for k, v in locals().items() if v is not None}
    if target not in TARGETS:
        raise InputError(f"unknown --target {target!r}; choose specialist or vlm")
    other = _SPECIALIST if target == "vlm" else _VLM
    wrong = [k for k in given if k in _panel_flags(other)]
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise InputError(f"{flags} does not apply to --target {target}")
    location = {"fold": fold, "label_set": label_set, "dataset_option": dataset_option}
    train_data = open_split(dataset, root, train_split, **location)
    eval_data = open_split(dataset, root, split, **location) if evaluate else None
    folder = run_dir or Path(f"runs/finetune-{dataset}-{target}-{sampler}")
    run = {"resume": resume, "progress": progress, "n_bootstrap": bootstrap, "seed": seed}
    if target == "specialist":
        summary = _specialist(given, train_data, eval_data, folder, train_limit, run)
    else:
        summary = _vlm(given, train_data, eval_data, folder, train_limit, run)
    _print_summary(summary)


def _groups(target: str) -> list[tuple[str, type]]:
    """The settings classes a target's flags fill, each with its flag prefix (--lora-rank → rank)."""
    if target == "specialist":
        from emovlm.train.finetune_specialist import FaceSettings
        from emovlm.train.specialist import HeadSettings

        return [("head_", HeadSettings), ("", FaceSettings)]
    from emovlm.train.finetune_vlm import VLMSettings
    from emovlm.train.lora import LoraSettings

    return [("lora_", LoraSettings), ("", VLMSettings)]


def _panel_flags(panel: str) -> set[str]:
    """The flags of `finetune` shown in one help panel (those of one target only)."""
    hints = typing.get_type_hints(finetune_command, include_extras=True)
    return {
        name
        for name, hint in hints.items()
        if any(
            getattr(m, "rich_help_panel", None) == panel for m in getattr(hint, "__metadata__", ())
        )
    }


def _settings(cls: type, prefix: str, given: dict[str, Any]) -> Any:
    """`cls` with each field taken from the flag --PREFIX-FIELD, else --FIELD, when given."""
    values = {}
    for f in fields(cls):
        flag = next((n for n in (prefix + f.name, f.name) if n in given), None)
        if flag is not None:
            values[f.name] = given[flag]
    return cls(**values)


def _specialist(
    given: dict[str, Any],
    train_data: Any,
    eval_data: Any,
    folder: Path,
    limit: int | None,
    run: dict,
) -> Any:
    from emovlm.train.finetune_specialist import finetune_specialist

    head, faces = (_settings(cls, prefix, given) for prefix, cls in _groups("specialist"))
    return finetune_specialist(
        train_data,
        eval_data,
        folder,
        head=head,
        faces=faces,
        train_limit=limit,
        feature_cache=given.get("feature_cache"),
        **run,
    )


def _vlm(
    given: dict[str, Any],
    train_data: Any,
    eval_data: Any,
    folder: Path,
    limit: int | None,
    run: dict,
) -> Any:
    from emovlm.train.finetune_vlm import finetune_vlm

    if "model" not in given:
        raise InputError("--target vlm needs --model, the base model's folder")
    if "lora_targets" in given:
        given["lora_targets"] = tuple(
            t.strip() for t in given["lora_targets"].split(",") if t.strip()
        )
    lora, vlm = (_settings(cls, prefix, given) for prefix, cls in _groups("vlm"))
    return finetune_vlm(
        train_data,
        eval_data,
        folder,
        vlm=vlm,
        lora=lora,
        allow_missing_classes=given["allow_missing_classes"],
        train_limit=limit,
        **run,
    )


def _print_summary(summary: Any) -> None:
    """What was trained and where, the last loss of each variant, and the comparison table."""
    console = Console()
    console.print(f"run folder: [bold]{summary.run_dir}[/]")
    for name, path in summary.outputs.items():
        console.print(f"  {name}: {path}")
    for name, log in summary.logs.items():
        losses = [e["loss"] for e in log if e.get("loss") is not None]
        if losses:
            console.print(
                f"  {name}: loss {losses[0]:.4f} → {losses[-1]:.4f} over {len(log)} epoch(s)"
            )
    table = summary.files.get("markdown")
    if table is not None:
        console.print(table.read_text(encoding="utf-8"), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `finetune` command."""
    app.command("finetune")(finetune_command)
