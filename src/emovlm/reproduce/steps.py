"""Run a plan's steps, each into its own run folder, skipping finished ones and resuming the rest.

A finished step leaves `step.json` (its fingerprint and what it wrote) in its folder. A step
whose marker matches is skipped; any other step runs, and the run store inside its folder
resumes what an interrupted run had already answered.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emovlm.data.balanced import balanced_samples, parse_per_class
from emovlm.data.base import Dataset
from emovlm.errors import InputError
from emovlm.eval.calibration import (
    batch_prior,
    calibrate_predictions,
    calibration_effect,
    score_matrix,
)
from emovlm.eval.longtail import diagnose_longtail
from emovlm.labels import LabelSpace
from emovlm.recognizers.base import RECOGNIZERS, Recognizer
from emovlm.reproduce.plan import Plan
from emovlm.reproduce.recipe import Step
from emovlm.run.runner import RunSummary, evaluate
from emovlm.run.store import RunStore
from emovlm.run.sweep import (
    default_frames,
    fps_experiment,
    msce_experiment,
    run_sweep,
    shuffle_experiment,
)
from emovlm.types import Sample

MARKER = "step.json"
"""The file a finished step writes last, in its run folder."""


@dataclass(frozen=True)
class StepOutcome:
    """What happened to one step: 'done' now, or 'skipped' (finished before), and its record."""

    step: str
    state: str
    record: Mapping[str, Any]


@dataclass(frozen=True)
class _Subset:
    """A fixed list of a dataset's samples (a balanced subset) with the selection in its config."""

    name: str
    label_space: LabelSpace
    items: tuple[Sample, ...]
    base_config: Mapping[str, Any]
    selection: Mapping[str, Any] = field(default_factory=dict)

    def samples(self) -> Iterator[Sample]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def config(self) -> dict[str, Any]:
        return {**self.base_config, "balanced": dict(self.selection)}

    def missing_media(self) -> list[Sample]:
        return [s for s in self.items if not Path(s.media).exists()]


def read_marker(folder: Path) -> dict[str, Any] | None:
    """A step folder's marker, or None when the step has not finished."""
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def run_plan(
    plan: Plan, *, progress: bool = True, say: Callable[[str], None] = print
) -> list[StepOutcome]:
    """Run the plan's steps in order; finished ones (same fingerprint) are skipped."""
    outcomes = []
    for step in plan.steps:
        folder = plan.folder(step)
        fingerprint = plan.fingerprint(step)
        marker = read_marker(folder)
        if marker and marker.get("fingerprint") == fingerprint:
            say(f"{step.name}: finished before, skipped")
            outcomes.append(StepOutcome(step.name, "skipped", marker))
            continue
        say(f"{step.name}: running ({step.kind}) → {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        result = _RUNNERS[step.kind](plan, step, folder, progress)
        record = {
            "step": step.name,
            "kind": step.kind,
            "fingerprint": fingerprint,
            "options": {k: v for k, v in plan.options(step).items() if "key" not in k},
            "result": result,
        }
        _write_marker(folder, record)
        say(f"{step.name}: done")
        outcomes.append(StepOutcome(step.name, "done", record))
    return outcomes


def _write_marker(folder: Path, record: Mapping[str, Any]) -> None:
    """Write step.json atomically (a kill never leaves half a marker)."""
    partial = folder / f".{MARKER}.partial"
    partial.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    os.replace(partial, folder / MARKER)


def _recognizer(plan: Plan, name: str, options: Mapping[str, Any], split_of: Step) -> Recognizer:
    """Build a registered recognizer; baselines are fitted on the step's fit split."""
    recognizer = RECOGNIZERS.get(name)(plan.dataset().label_space, **options)
    fit = getattr(recognizer, "fit", None)
    if fit is not None:
        fit(plan.dataset(str(split_of.spec.get("fit_split", "train"))))
    return recognizer


def _evaluate(plan: Plan, data: Dataset, recognizer: Recognizer, folder: Path, progress: bool):
    """The runner's evaluate with the recipe's bootstrap and seed (resuming the folder)."""
    return evaluate(
        data,
        recognizer,
        folder,
        dataset_config=data.config(),
        batch_size=plan.target.batch_size or getattr(recognizer, "batch_size", 8),
        resume=True,
        progress=progress,
        n_bootstrap=plan.recipe.bootstrap,
        seed=plan.recipe.seed,
    )


def _inside(folder: Path, path: Path | str) -> str:
    """`path` relative to the step folder (markers stay valid when the output folder moves)."""
    return os.path.relpath(Path(path).absolute(), folder.absolute())


def _summary_record(summary: RunSummary) -> dict[str, Any]:
    folder = Path(summary.run_dir)
    return {
        "config_key": summary.config_key,
        "metrics_file": _inside(folder, summary.report_files["json"]),
        "report": _inside(folder, summary.report_files["html"]),
        "n": summary.n_total,
        "n_new": summary.n_new,
        "n_done_before": summary.n_done_before,
        "n_failed": summary.n_failed,
    }


def _run_eval(plan: Plan, step: Step, folder: Path, progress: bool) -> dict[str, Any]:
    data: Dataset = plan.dataset()
    record: dict[str, Any] = {}
    if step.spec.get("balanced") is not None:
        samples, selection = balanced_samples(
            list(data.samples()),
            data.label_space,
            parse_per_class(step.spec["balanced"]),
            int(step.spec.get("balance_seed", 0)),
            allow_fewer=False,
        )
        data = _Subset(
            data.name, data.label_space, tuple(samples), data.config(), selection.summary()
        )
        record["balanced"] = selection.summary()
    recognizer = _recognizer(plan, str(step.recognizer), plan.options(step), step)
    summary = _evaluate(plan, data, recognizer, folder, progress)
    return {**record, **_summary_record(summary)}


def _run_sweep(plan: Plan, step: Step, folder: Path, progress: bool) -> dict[str, Any]:
    options = plan.options(step)
    spec = step.spec
    experiment = spec["experiment"]
    if experiment == "fps":
        plan_ = fps_experiment(str(step.recognizer), [float(v) for v in spec.get("values", [])])
    elif experiment == "shuffle":
        frames = options.pop("frames", None) or default_frames(str(step.recognizer))
        seeds = [int(v) for v in spec.get("values", [0])]
        plan_ = shuffle_experiment(str(step.recognizer), frames, seeds)
    else:
        variants = spec.get("variants") or ["sparse", "msce-vlm", "msce-specialist"]
        plan_ = msce_experiment(
            int(spec.get("keyframes", 8)), int(spec.get("per_gap", 4)), variants
        )
    data = plan.dataset()
    result = run_sweep(
        data,
        plan_,
        folder,
        dataset_config=data.config(),
        options=options,
        batch_size=plan.target.batch_size,
        n_bootstrap=plan.recipe.bootstrap,
        seed=plan.recipe.seed,
        progress=progress,
    )
    return {"summary_file": _inside(folder, result.files["json"]), "keys": dict(result.keys)}


def _run_diagnose(plan: Plan, step: Step, folder: Path, progress: bool) -> dict[str, Any]:
    source = plan.recipe.step(str(step.spec["of"]))
    marker = read_marker(plan.folder(source))
    if marker is None:
        raise InputError(
            f"{plan.recipe.where('steps', step.name, 'of')}: step {step.name!r} diagnoses "
            f"{source.name!r}, which has not finished; run it first (drop --skip {source.name} "
            f"or add it to --only)"
        )
    result = marker["result"]
    metrics_file = plan.folder(source) / result["metrics_file"]
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    with RunStore(plan.folder(source), create=False) as store:
        predictions, gold = store.rows(result["config_key"])
    diagnosis = diagnose_longtail(
        metrics,
        gold,
        predictions,
        plan.dataset().label_space,
        n_bootstrap=plan.recipe.bootstrap,
        seed=plan.recipe.seed,
    )
    path = folder / "longtail.json"
    path.write_text(json.dumps(diagnosis, indent=2, ensure_ascii=False), encoding="utf-8")
    return {"diagnosis_file": _inside(folder, path), "of": source.name}


def _run_calibrate(plan: Plan, step: Step, folder: Path, progress: bool) -> dict[str, Any]:
    data = plan.dataset()
    recognizer = _recognizer(plan, str(step.recognizer), plan.options(step), step)
    summary = _evaluate(plan, data, recognizer, folder, progress)
    with RunStore(folder, create=False) as store:
        predictions, gold = store.rows(summary.config_key)
    space = data.label_space
    matrix, usable = score_matrix(predictions, space)
    if not usable.any():
        raise InputError(
            f"{plan.recipe.where('steps', step.name)}: step {step.name!r} stored no label "
            "scores; calibration needs options: {mode: score} (a server with logprobs)"
        )
    prior = batch_prior(matrix[usable], int(step.spec.get("iterations", 1)))
    calibrated = calibrate_predictions(predictions, space, prior, method="batch")
    effect = calibration_effect(
        gold,
        predictions,
        calibrated,
        space,
        n_bootstrap=plan.recipe.bootstrap,
        seed=plan.recipe.seed,
    )
    effect["prior"] = dict(zip(space.labels, map(float, prior), strict=True))
    path = folder / "calibration.json"
    path.write_text(json.dumps(effect, indent=2, default=str), encoding="utf-8")
    return {"calibration_file": _inside(folder, path), **_summary_record(summary)}


def _run_finetune(plan: Plan, step: Step, folder: Path, progress: bool) -> dict[str, Any]:
    from dataclasses import fields

    from emovlm.train.finetune_vlm import VLMSettings, finetune_vlm
    from emovlm.train.lora import LoraSettings

    options = plan.options(step)
    vlm_fields = {f.name for f in fields(VLMSettings)}
    lora = {k: v for k, v in (step.spec.get("options") or {}).items() if k not in vlm_fields}
    summary = finetune_vlm(
        plan.dataset(str(step.spec.get("train_split", "train"))),
        plan.dataset(),
        folder,
        vlm=VLMSettings(**{k: v for k, v in options.items() if k in vlm_fields}),
        lora=LoraSettings(sampler=str(step.spec.get("sampler", "class-balanced")), **lora),
        allow_missing_classes=bool(step.spec.get("allow_missing_classes", False)),
        train_limit=step.spec.get("train_limit"),
        resume=True,
        progress=progress,
        n_bootstrap=plan.recipe.bootstrap,
        seed=plan.recipe.seed,
    )
    return {
        "outputs": {k: _inside(folder, v) for k, v in summary.outputs.items()},
        "comparison_file": _inside(folder, summary.files["json"])
        if "json" in summary.files
        else "",
    }


_RUNNERS: dict[str, Callable[[Plan, Step, Path, bool], dict[str, Any]]] = {
    "eval": _run_eval,
    "sweep": _run_sweep,
    "diagnose": _run_diagnose,
    "calibrate": _run_calibrate,
    "finetune": _run_finetune,
}
