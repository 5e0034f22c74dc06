"""A fine-tuning run folder: its recorded settings (finetune.yaml), training log and evaluation parts.

Layout: `finetune.yaml` (what was trained, on what, how), `training_log.json` (loss per epoch of
every trained variant), the trained heads or adapter (+ `checkpoints/` for LoRA), `eval/` (an
`emovlm eval` run folder holding every variant's predictions and reports) and
`comparison.md` / `comparison.json` (per-class recall of the variants side by side).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

import emovlm
from emovlm.data.base import Dataset
from emovlm.errors import InputError
from emovlm.recognizers.base import Recognizer
from emovlm.run.plain import to_plain
from emovlm.run.runner import evaluate
from emovlm.train.compare import compare_recall, write_comparison
from emovlm.train.trainset import check_classes, labelled_samples
from emovlm.types import Sample

FINETUNE_FILE = "finetune.yaml"
LOG_FILE = "training_log.json"
EVAL_DIR = "eval"
GROWABLE = ("epochs",)
"""Settings a resumed run may change (training can be extended by more epochs)."""


@dataclass
class FinetuneSummary:
    """What a finetune run produced: trained files, logs, metrics per variant and the comparison files."""

    run_dir: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def prepare_run_folder(run_dir: Path, config: Mapping[str, Any], *, resume: bool) -> None:
    """Record `config` in a new run folder; continue an existing one only with `resume` and the same config."""
    path = Path(run_dir) / FINETUNE_FILE
    plain = to_plain(config, "finetune settings")
    if path.is_file():
        if not resume:
            raise InputError(
                f"{run_dir} already holds a finetune run; pass --resume to continue it "
                "or choose another --run-dir"
            )
        saved = yaml.safe_load(path.read_text(encoding="utf-8")).get("config", {})
        changed = _differences(saved, plain)
        if changed:
            raise InputError(
                f"{run_dir} was trained with other settings ({', '.join(changed)}); resume with "
                "the same settings or choose another --run-dir"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "emovlm": emovlm.__version__,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": plain,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")


def write_training_log(run_dir: Path, logs: Mapping[str, Sequence[Mapping[str, Any]]]) -> Path:
    """Write each variant's per-epoch log (loss, seconds, …) to training_log.json.

    Variants already in the file and not trained again (a resumed run) keep their entries.
    """
    path = Path(run_dir) / LOG_FILE
    kept = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    merged = {**kept, **to_plain(logs, "training log")}
    path.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    return path


def evaluate_variants(
    summary: FinetuneSummary,
    eval_data: Dataset,
    recognizers: Mapping[str, Callable[[], Recognizer]],
    *,
    train_counts: Mapping[str, int],
    title: str,
    resume: bool,
    progress: bool,
    n_bootstrap: int,
    seed: int,
) -> FinetuneSummary:
    """Evaluate each variant into the run folder's eval/ and write their side-by-side comparison.

    `recognizers` maps a variant name to a factory, so each model is loaded only for its turn.
    """
    for variant, build in recognizers.items():
        recognizer = build()
        result = evaluate(
            eval_data,
            recognizer,
            summary.run_dir / EVAL_DIR,
            dataset_config=eval_data.config(),
            batch_size=getattr(recognizer, "batch_size", 8),
            resume=resume,
            progress=progress,
            n_bootstrap=n_bootstrap,
            seed=seed,
        )
        summary.metrics[variant] = result.metrics
        summary.files.update({f"{variant} {k}": v for k, v in result.report_files.items()})
    comparison = compare_recall(summary.metrics, train_counts)
    summary.files.update(write_comparison(comparison, summary.run_dir, title))
    return summary


def training_split(
    train_data: Dataset,
    eval_data: Dataset | None,
    *,
    limit: int | None,
    seed: int,
    allow_missing_classes: bool,
) -> tuple[list[Sample], dict[str, Any]]:
    """The checked training samples and the splits' entries (`train`, `eval`) of the run's settings.

    Refuses an evaluation split of another label set, an empty or unlabelled training split and,
    unless `allow_missing_classes`, a class without a training sample.
    """
    if eval_data is not None and eval_data.label_space != train_data.label_space:
        raise InputError(
            f"training split uses label set {train_data.label_space.name!r} but the evaluation "
            f"split {eval_data.label_space.name!r}; use one label set for both"
        )
    samples = choose_training_samples(labelled_samples(train_data), limit, seed)
    check_classes(
        [s.labels for s in samples],
        train_data.label_space,
        allow_missing_classes=allow_missing_classes,
    )
    splits = {
        "train": {**train_data.config(), "limit": limit, "seed": seed},
        "eval": eval_data.config() if eval_data is not None else None,
    }
    return samples, splits


def choose_training_samples(
    samples: Sequence[Sample], limit: int | None, seed: int
) -> list[Sample]:
    """All samples, or `limit` of them drawn at random with `seed` (kept in the split's order)."""
    if limit is None or limit >= len(samples):
        return list(samples)
    if limit < 1:
        raise InputError(f"--train-limit must be at least 1, got {limit}")
    chosen = sorted(random.Random(seed).sample(range(len(samples)), limit))
    return [samples[i] for i in chosen]


def _differences(saved: Any, current: Any, where: str = "") -> list[str]:
    """Dotted names of settings that differ, ignoring the growable ones."""
    if isinstance(saved, dict) and isinstance(current, dict):
        names = []
        for key in dict.fromkeys([*saved, *current]):
            if key in GROWABLE:
                continue
            names += _differences(saved.get(key), current.get(key), f"{where}{key}.")
        return names
    return [] if saved == current else [where.rstrip(".")]
