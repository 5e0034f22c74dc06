"""Sweeps: one recognizer setting after another on the same samples, into one run folder, compared.

Each setting is an ordinary `evaluate` run (its own configuration key in the folder's store, so
a sweep resumes where it stopped and settings shared by two sweeps are predicted once). The
settings are then compared on the samples they all have, with paired bootstrap differences to a
reference setting, and sweep.json, sweep.md and sweep.png are written to the folder.
"""

from __future__ import annotations

import inspect
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emovlm.data.base import Dataset
from emovlm.errors import InputError
from emovlm.eval.compare import paired_comparison
from emovlm.eval.plots import sweep_png
from emovlm.recognizers.base import RECOGNIZERS
from emovlm.run.runner import evaluate
from emovlm.run.store import RunStore
from emovlm.types import Cost, Prediction, Status

PAPER_FPS = (1, 5, 10, 15, 20, 25)
"""The frame rates of Paper A's sweep."""

MSCE_VARIANTS = {
    "sparse": "the VLM on the keyframes alone",
    "dense": "the VLM on as many uniform frames as MSCE reads (keyframes + in-between frames)",
    "msce-vlm": "MSCE, VLM describer, keyframes and sentences interleaved",
    "msce-specialist": "MSCE, specialist describer, keyframes and sentences interleaved",
    "msce-vlm-text": "MSCE, VLM describer, sentences only",
    "msce-specialist-text": "MSCE, specialist describer, sentences only",
}
"""Settings the msce experiment can compare, by name."""

DEFAULT_MSCE_VARIANTS = ("sparse", "msce-vlm", "msce-specialist")
"""Paper A's comparison: sparse keyframes vs MSCE with each describer, at equal keyframes."""


@dataclass(frozen=True)
class Setting:
    """One point of a sweep: its name, the recognizer, the options it sets, its plot position."""

    name: str
    recognizer: str
    options: Mapping[str, Any]
    value: float | str


@dataclass(frozen=True)
class Experiment:
    """Named settings run on the same samples; differences are taken to `reference`."""

    name: str
    settings: tuple[Setting, ...]
    reference: str
    axis: str

    def __post_init__(self) -> None:
        names = [s.name for s in self.settings]
        if not names:
            raise InputError(f"experiment {self.name!r} has no settings; give some --values")
        if len(set(names)) != len(names):
            raise InputError(f"experiment {self.name!r} repeats a setting: {', '.join(names)}")
        if self.reference not in names:
            raise InputError(
                f"reference {self.reference!r} is not a setting of {self.name!r}; "
                f"choose one of: {', '.join(names)}"
            )

    def with_reference(self, reference: str | None) -> Experiment:
        """The same experiment compared to another setting (by name or plot value)."""
        if reference is None:
            return self
        for setting in self.settings:
            value = setting.value
            if reference in (setting.name, _number(value) if isinstance(value, float) else value):
                return Experiment(self.name, self.settings, setting.name, self.axis)
        return Experiment(self.name, self.settings, reference, self.axis)


@dataclass(frozen=True)
class SweepResult:
    """What a sweep ran (configuration key per setting), what it found, and the files it wrote."""

    run_dir: Path
    experiment: Experiment
    keys: dict[str, str]
    summary: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def fps_experiment(recognizer: str, values: Sequence[float] = PAPER_FPS) -> Experiment:
    """Frame-rate sweep: the recognizer with `--frames fps:F` for each F; reference the first."""
    settings = tuple(
        Setting(f"fps:{_number(v)}", recognizer, {"frames": f"fps:{_number(v)}"}, float(v))
        for v in values
    )
    return Experiment("fps", settings, settings[0].name if settings else "", "frames per second")


def shuffle_experiment(recognizer: str, frames: str, seeds: Sequence[int] = (0,)) -> Experiment:
    """Shuffle test: the frames in their order vs shuffled with each seed; reference the original."""
    original = Setting("original", recognizer, {"frames": frames}, "original")
    shuffled = tuple(
        Setting(
            f"shuffled:{seed}",
            recognizer,
            {"frames": f"{frames}+shuffle:{seed}"},
            f"shuffled:{seed}",
        )
        for seed in seeds
    )
    return Experiment("shuffle", (original, *shuffled), "original", "frame order")


def msce_experiment(
    keyframes: int = 8, per_gap: int = 4, variants: Sequence[str] = DEFAULT_MSCE_VARIANTS
) -> Experiment:
    """Sparse keyframes vs MSCE (and the other variants named) at equal keyframes."""
    unknown = [v for v in variants if v not in MSCE_VARIANTS]
    if unknown:
        raise InputError(
            f"unknown msce variant(s) {', '.join(unknown)}; choose from: {', '.join(MSCE_VARIANTS)}"
        )
    plan = {"keyframes": keyframes, "per_gap": per_gap}
    dense = keyframes + (keyframes - 1) * per_gap
    built = {
        "sparse": Setting("sparse", "vlm", {"frames": f"uniform:{keyframes}"}, "sparse"),
        "dense": Setting("dense", "vlm", {"frames": f"uniform:{dense}"}, "dense"),
    }
    for describer, stage2 in itertools.product(("vlm", "specialist"), ("interleaved", "text")):
        name = f"msce-{describer}" + ("-text" if stage2 == "text" else "")
        options = {**plan, "describer": describer, "stage2": stage2}
        built[name] = Setting(name, "msce", options, name)
    settings = tuple(built[v] for v in variants)
    reference = "sparse" if "sparse" in variants else variants[0] if variants else ""
    return Experiment("msce", settings, reference, "method")


def grid_experiment(recognizer: str, grid: Mapping[str, Sequence[Any]]) -> Experiment:
    """Every combination of the given option values; reference the first combination."""
    if not grid:
        raise InputError(
            "a grid needs at least one OPTION=VALUE,VALUE (e.g. --grid frames=fps:1,fps:5)"
        )
    keys = list(grid)
    settings = []
    for combination in itertools.product(*(grid[k] for k in keys)):
        options = dict(zip(keys, combination, strict=True))
        name = ",".join(f"{k}={v}" for k, v in options.items())
        only = combination[0] if len(keys) == 1 else None
        value = (
            float(only) if isinstance(only, int | float) and not isinstance(only, bool) else name
        )
        settings.append(Setting(name, recognizer, options, value))
    return Experiment("grid", tuple(settings), settings[0].name, " × ".join(keys))


def default_frames(recognizer: str) -> str:
    """The recognizer's own default `frames` sampler (what the shuffle test shuffles)."""
    parameter = inspect.signature(RECOGNIZERS.get(recognizer)).parameters.get("frames")
    if parameter is None or parameter.default is inspect.Parameter.empty:
        raise InputError(f"--recognizer {recognizer} has no --frames setting to shuffle")
    return str(parameter.default)


def run_sweep(
    dataset: Dataset,
    experiment: Experiment,
    run_dir: Path,
    *,
    dataset_config: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> SweepResult:
    """Run every setting (resuming what the folder already holds), compare, write the outputs.

    `options` are recognizer options shared by all settings; each setting gets those its
    recognizer accepts, then its own on top. An option no setting's recognizer accepts is refused.
    """
    if dataset.label_space.multi_label:
        raise InputError(
            f"sweeps compare single-label metrics; {dataset.label_space.name} is multi-label"
        )
    run_dir = Path(run_dir)
    chosen = {s.name: _setting_options(s, options or {}) for s in experiment.settings}
    _refuse_unused(experiment, options or {})
    keys: dict[str, str] = {}
    for setting in experiment.settings:
        recognizer = RECOGNIZERS.get(setting.recognizer)(
            dataset.label_space, **chosen[setting.name]
        )
        summary = evaluate(
            dataset,
            recognizer,
            run_dir,
            dataset_config=dataset_config,
            batch_size=batch_size or getattr(recognizer, "batch_size", 8),
            limit=limit,
            resume=True,
            progress=progress,
            report=False,
        )
        keys[setting.name] = summary.config_key
        del recognizer
    with RunStore(run_dir, create=False) as store:
        runs = {name: store.rows(key) for name, key in keys.items()}
    comparison = paired_comparison(
        runs, dataset.label_space, experiment.reference, n_bootstrap=n_bootstrap, seed=seed
    )
    summary = _summary(experiment, dataset_config, chosen, keys, runs, comparison)
    files = _write(run_dir, summary)
    return SweepResult(run_dir, experiment, keys, summary, files)


def _setting_options(setting: Setting, shared: Mapping[str, Any]) -> dict[str, Any]:
    """The shared options the setting's recognizer accepts, then the setting's own."""
    accepted = inspect.signature(RECOGNIZERS.get(setting.recognizer)).parameters
    wrong = [k for k in setting.options if k not in accepted]
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise InputError(f"{flags} does not apply to --recognizer {setting.recognizer}")
    return {**{k: v for k, v in shared.items() if k in accepted}, **setting.options}


def _refuse_unused(experiment: Experiment, shared: Mapping[str, Any]) -> None:
    """Refuse shared options that no recognizer of the experiment accepts."""
    accepted: set[str] = set()
    for name in {s.recognizer for s in experiment.settings}:
        accepted.update(inspect.signature(RECOGNIZERS.get(name)).parameters)
    unused = [k for k in shared if k not in accepted]
    if unused:
        flags = ", ".join("--" + k.replace("_", "-") for k in unused)
        used = ", ".join(sorted({s.recognizer for s in experiment.settings}))
        raise InputError(f"{flags} does not apply to the recognizers of this sweep ({used})")


def _mean_cost(predictions: Sequence[Prediction]) -> dict[str, float]:
    """Cost per clip: each Cost field's mean over the predictions."""
    total = sum((p.cost for p in predictions), Cost())
    return {name: value / max(1, len(predictions)) for name, value in asdict(total).items()}


def _summary(
    experiment: Experiment,
    dataset_config: Mapping[str, Any],
    chosen: Mapping[str, Mapping[str, Any]],
    keys: Mapping[str, str],
    runs: Mapping[str, tuple[Sequence[Prediction], Any]],
    comparison: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON-able record of a sweep: one entry per setting with metrics, cost and difference."""
    settings = []
    for setting in experiment.settings:
        predictions = runs[setting.name][0]
        scored = comparison["settings"][setting.name]
        settings.append(
            {
                "name": setting.name,
                "value": setting.value,
                "recognizer": setting.recognizer,
                "options": dict(chosen[setting.name]),
                "key": keys[setting.name],
                "n_rows": scored["n_rows"],
                "failed": sum(p.status is Status.FAILED for p in predictions),
                "metrics": scored["metrics"],
                "ci": scored["ci"],
                "cost_per_clip": _mean_cost(predictions),
                "difference": comparison["differences"].get(setting.name),
            }
        )
    return {
        "experiment": experiment.name,
        "axis": experiment.axis,
        "reference": experiment.reference,
        "dataset": dict(dataset_config),
        "n": comparison["n"],
        "metrics": comparison["metrics"],
        "n_bootstrap": comparison["n_bootstrap"],
        "seed": comparison["seed"],
        "ci_level": comparison["ci_level"],
        "settings": settings,
    }


def _write(run_dir: Path, summary: Mapping[str, Any]) -> dict[str, Path]:
    """sweep.json, sweep.md and sweep.png in the run folder."""
    files = {
        "json": run_dir / "sweep.json",
        "md": run_dir / "sweep.md",
        "png": run_dir / "sweep.png",
    }
    files["json"].write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    files["md"].write_text(sweep_markdown(summary), encoding="utf-8")
    files["png"].write_bytes(sweep_png(summary))
    return files


def sweep_markdown(summary: Mapping[str, Any]) -> str:
    """The sweep as Markdown: metric per setting with intervals, cost, and paired differences."""
    metrics = summary["metrics"]
    level = round(100 * summary["ci_level"])
    lines = [
        f"# Sweep: {summary['experiment']} ({summary['axis']})",
        "",
        f"{summary['n']} samples of {summary['dataset'].get('name', 'the dataset')} scored under "
        f"every setting; {level}% percentile intervals from {summary['n_bootstrap']} bootstrap "
        f"resamples (seed {summary['seed']}), the same resamples for every setting, so "
        f"differences to **{summary['reference']}** are paired.",
        "",
        "| setting | " + " | ".join(metrics) + " | failed | calls/clip | visual tokens/clip "
        "| input tokens/clip | s/clip | key |",
        "|---" * (len(metrics) + 7) + "|",
    ]
    for s in summary["settings"]:
        cells = [with_interval(s["metrics"][m], s["ci"].get(m)) for m in metrics]
        cost = s["cost_per_clip"]
        lines.append(
            f"| {s['name']} | " + " | ".join(cells) + f" | {s['failed']} | {cost['calls']:.2f} | "
            f"{cost['visual_tokens']:.0f} | {cost['input_tokens']:.0f} | {cost['seconds']:.3f} "
            f"| {s['key']} |"
        )
    lines += [
        "",
        f"## Differences to {summary['reference']} (paired)",
        "",
        "| setting | " + " | ".join(f"Δ {m}" for m in metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for s in summary["settings"]:
        if s["difference"] is None:
            continue
        cells = [
            with_interval(s["difference"][m]["diff"], s["difference"][m]["ci"], signed=True)
            for m in metrics
        ]
        lines.append(f"| {s['name']} | " + " | ".join(cells) + " |")
    reading = _reading(summary)
    return "\n".join([*lines, *(["", reading] if reading else []), ""])


def with_interval(value: float, bounds: Sequence[float] | None, *, signed: bool = False) -> str:
    """A value with its interval: '0.412 [0.380, 0.445]', signed '+0.012 [-0.004, +0.030]'."""
    form = "+.3f" if signed else ".3f"
    if not bounds:
        return format(value, form)
    return f"{value:{form}} [{bounds[0]:{form}}, {bounds[1]:{form}}]"


def _reading(summary: Mapping[str, Any]) -> str:
    """A plain sentence on what the shuffle test shows ('' for other experiments)."""
    if summary["experiment"] != "shuffle":
        return ""
    sentences = []
    for s in summary["settings"]:
        difference = (s["difference"] or {}).get("macro_f1")
        if not difference:
            continue
        bounds = difference["ci"]
        holds_zero = bounds is None or bounds[0] <= 0 <= bounds[1]
        shown = with_interval(difference["diff"], bounds, signed=True)
        if holds_zero:
            sentences.append(
                f"Shuffling ({s['name']}) does not change macro F1 measurably (Δ {shown}): "
                "the recognizer treats the clip as a bag of frames."
            )
        else:
            sentences.append(f"Frame order matters ({s['name']}): macro F1 changes by {shown}.")
    if any(s["recognizer"] == "specialist" for s in summary["settings"]):
        sentences.append(
            "The specialist's clip aggregators (mean, peak) ignore frame order by construction, "
            "so only face tracking across shuffled frames can move its answers."
        )
    return " ".join(sentences)


def _number(value: float) -> str:
    """5.0 → '5', 2.5 → '2.5'."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
