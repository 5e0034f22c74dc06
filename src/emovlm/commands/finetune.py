"""`emovlm finetune`: re-train the specialist's head or LoRA-tune a VLM, then compare per-class recall."""

from __future__ import annotations

import functools
import typing
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from emovlm.commands._dataset_options import DATA_PANEL, open_split, with_dataset_options
from emovlm.commands._recognizer_options import flag_type, with_options
from emovlm.commands._run_options import in_panel
from emovlm.errors import InputError
from emovlm.train.settings import (
    SAMPLER_HELP,
    FaceSettings,
    HeadSettings,
    LoraSettings,
    VLMSettings,
)

_TRAIN = "Training (both targets)"
_SPECIALIST = "Specialist head [--target specialist]"
_VLM = "LoRA [--target vlm]"
_RUN = "Run"

TARGETS = ("specialist", "vlm")


TARGET_SETTINGS: dict[str, tuple[type, type]] = {
    "specialist": (HeadSettings, FaceSettings),
    "vlm": (LoraSettings, VLMSettings),
}
"""The settings classes each target's flags fill."""


def _shown(value: Any) -> str:
    """A default as the help shows it."""
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value) if value not in (None, "") else "none"


@functools.cache
def finetune_options() -> tuple[dict[str, tuple[type, str, str]], dict[str, list[str]]]:
    """Each training setting as an option (CLI type, help, panel), and the targets it applies to.

    A flag is the field's name (or its metadata's `flag`); the help is the field's, with each
    target's default; the panel says which targets it applies to.
    """
    defaults: dict[str, dict[str, Any]] = {}
    first: dict[str, tuple[Any, Any]] = {}
    for target, classes in TARGET_SETTINGS.items():
        for cls in classes:
            hints = typing.get_type_hints(cls)
            for f in fields(cls):
                name = f.metadata.get("flag") or f.name
                defaults.setdefault(name, {})[target] = f.default
                first.setdefault(name, (f, hints[f.name]))
    defaults["allow_missing_classes"]["vlm"] = False  # an argument of finetune_vlm itself
    del defaults["sampler"]  # the command's own --sampler: class-balanced for both targets
    table = {}
    for name, by_target in defaults.items():
        f, hint = first[name]
        values = {_shown(v) for v in by_target.values()}
        each = ", ".join(f"{t} {_shown(v)}" for t, v in by_target.items())
        default = each if len(values) > 1 else values.pop()
        panel = _TRAIN if len(by_target) > 1 else _SPECIALIST if "specialist" in by_target else _VLM
        table[name] = (flag_type(hint), f"{f.metadata['help']} (default: {default})", panel)
    return table, {name: list(by_target) for name, by_target in defaults.items()}


@with_dataset_options
@with_options(finetune_options()[0], "options")
def finetune_command(
    train_split: Annotated[str, in_panel(DATA_PANEL, "split to train on")] = "train",
    split: Annotated[str, in_panel(DATA_PANEL, "split to evaluate on after training")] = "test",
    train_limit: Annotated[
        int | None, in_panel(DATA_PANEL, "train on N samples drawn at random (seeded)")
    ] = None,
    target: Annotated[
        str, in_panel(_TRAIN, "specialist (head on frozen features) | vlm (LoRA)")
    ] = "specialist",
    sampler: Annotated[str, in_panel(_TRAIN, f"{SAMPLER_HELP} (both targets)")] = "class-balanced",
    feature_cache: Annotated[
        Path | None, in_panel(_SPECIALIST, "feature cache folder (default: emovlm cache/features)")
    ] = None,
    run_dir: Annotated[
        Path | None, in_panel(_RUN, "run folder (default: runs/finetune-DATASET-TARGET-SAMPLER)")
    ] = None,
    resume: Annotated[
        bool, in_panel(_RUN, "continue a run folder (LoRA from its last checkpoint)")
    ] = False,
    evaluate: Annotated[
        bool, in_panel(_RUN, "evaluate on --split after training", "--eval/--no-eval")
    ] = True,
    bootstrap: Annotated[int, in_panel(_RUN, "bootstrap resamples")] = 1000,
    progress: Annotated[bool, in_panel(_RUN, "show progress bars")] = True,
    *,
    dataset_flags: dict[str, Any],
    options: dict[str, Any],
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
    if target not in TARGETS:
        raise InputError(f"unknown --target {target!r}; choose specialist or vlm")
    wrong = [k for k in options if target not in finetune_options()[1][k]]
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise InputError(f"{flags} does not apply to --target {target}")
    train_data = open_split(dataset_flags, train_split)
    eval_data = open_split(dataset_flags, split) if evaluate else None
    options = {**options, "sampler": sampler}
    folder = run_dir or Path(f"runs/finetune-{dataset_flags['dataset']}-{target}-{sampler}")
    run = {"resume": resume, "progress": progress, "n_bootstrap": bootstrap}
    run["seed"] = options.get("seed", 0)
    if target == "specialist":
        from emovlm.train.finetune_specialist import finetune_specialist

        head, faces = (_settings(cls, options) for cls in TARGET_SETTINGS[target])
        summary = finetune_specialist(
            train_data,
            eval_data,
            folder,
            head=head,
            faces=faces,
            train_limit=train_limit,
            feature_cache=feature_cache,
            **run,
        )
    else:
        summary = _vlm(options, train_data, eval_data, folder, train_limit, run)
    _print_summary(summary)


def _settings(cls: type, given: dict[str, Any]) -> Any:
    """`cls` with each field taken from its flag, when given."""
    values = {}
    for f in fields(cls):
        name = f.metadata.get("flag") or f.name
        if name in given:
            values[f.name] = given[name]
    return cls(**values)


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
    lora, vlm = (_settings(cls, given) for cls in TARGET_SETTINGS["vlm"])
    return finetune_vlm(
        train_data,
        eval_data,
        folder,
        vlm=vlm,
        lora=lora,
        allow_missing_classes=given.get("allow_missing_classes", False),
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
