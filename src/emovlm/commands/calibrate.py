"""`emovlm calibrate`: prior correction of a run's stored label scores, as a new configuration."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console

from emovlm.commands._recognizer_options import build_recognizer, with_recognizer_options
from emovlm.commands._run_options import Bootstrap, BootstrapSeed, ConfigKey, RunFolder
from emovlm.errors import InputError
from emovlm.eval.calibration import (
    CONTENT_FREE_KINDS,
    METHODS,
    batch_prior,
    calibrate_predictions,
    calibration_effect,
    content_free_prior,
    read_prior,
    score_matrix,
)
from emovlm.eval.report import interval, percent
from emovlm.labels import LabelSpace

CONTENT_FREE_FOLDER = "content-free"
"""Folder of a run where the content-free images and measured priors are written."""


@dataclass(frozen=True)
class CalibratedRun:
    """Where calibrated predictions went and what they changed."""

    source_key: str
    config_key: str
    report_dir: Path
    effect: dict[str, Any]
    files: dict[str, Path]


def source_entry(run_dir: Path, key: str | None) -> dict[str, Any]:
    """The configuration to calibrate: `key`'s, else the folder's only uncalibrated one."""
    from emovlm.run.config import find_config, read_configs

    if key is None:
        sources = [entry for entry in read_configs(run_dir) if "calibration" not in entry]
        if len(sources) == 1:
            return sources[0]
    return find_config(run_dir, key)


def measure_prior(
    run_dir: Path,
    *,
    key: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    kinds: Sequence[str] = tuple(CONTENT_FREE_KINDS),
) -> tuple[dict[str, Any], Path]:
    """Run the configuration's recognizer on content-free images; return the prior and its file.

    The recognizer is rebuilt from the settings stored in config.yaml (those its constructor
    takes), with `faces` set to "none" (a content-free image has no face to find) and then
    `overrides` applied (e.g. base_url, which is not stored). The prior is written as JSON to
    RUN_DIR/content-free/prior-KEY.json.
    """
    from emovlm.recognizers.base import RECOGNIZERS
    from emovlm.run.config import label_space_of

    entry = source_entry(run_dir, key)
    name, stored = entry["recognizer"]["name"], entry["recognizer"]["config"]
    accepted = set(inspect.signature(RECOGNIZERS.get(name)).parameters) - {"settings"}
    recorded = stored.get("settings", stored)  # the settings object's fields (older runs: flat)
    options = {k: v for k, v in recorded.items() if k in accepted and v is not None}
    if "faces" in accepted:
        options["faces"] = "none"
    options.update(overrides or {})
    recognizer = build_recognizer(name, label_space_of(entry), options)
    folder = run_dir / CONTENT_FREE_FOLDER
    measured = content_free_prior(recognizer, folder, kinds)
    measured.update(source_key=entry["key"], recognizer_options=_plain(options))
    path = folder / f"prior-{entry['key']}.json"
    path.write_text(json.dumps(measured, indent=2, ensure_ascii=False), encoding="utf-8")
    return measured, path


def calibrate_run(
    run_dir: Path,
    *,
    method: str,
    key: str | None = None,
    prior: np.ndarray | None = None,
    prior_source: str = "",
    iterations: int = 1,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> CalibratedRun:
    """Calibrate one configuration's stored scores into a new configuration of the same run folder.

    `method` "batch" estimates the prior from the stored scores (`iterations` > 1 refines it until
    the calibrated mean is uniform); "contextual" needs `prior` (see `measure_prior`). The new
    configuration is the source's plus a `calibration` entry (method, source key, prior); its
    rows replace earlier ones of the same key, and its report folder gets the usual report plus
    calibration.json, calibration.md and figures/calibration_shares.png. No model is called.
    """
    from emovlm.run.config import label_space_of, record_config
    from emovlm.run.lock import RunLock
    from emovlm.run.runner import rebuild_report
    from emovlm.run.store import RunStore

    if method not in METHODS:
        raise InputError(f"unknown --method {method!r}; choose one of: {', '.join(METHODS)}")
    with RunLock(run_dir), RunStore(run_dir, create=False) as store:
        entry = source_entry(run_dir, key)
        if "calibration" in entry:
            raise InputError(
                f"configuration {entry['key']} is already calibrated; calibrate its source "
                f"{entry['calibration']['of']} instead"
            )
        space = label_space_of(entry)
        predictions, gold = store.rows(entry["key"])
        matrix, usable = score_matrix(predictions, space)
        if not usable.any():
            raise InputError(
                f"configuration {entry['key']} of {run_dir} stored no label scores; calibration "
                "needs a recognizer that scores labels (the specialist, or vlm --mode score)"
            )
        if method == "batch":
            prior = batch_prior(matrix[usable], iterations)
            prior_source = f"mean of {int(usable.sum())} stored score rows"
        elif prior is None:
            raise InputError("contextual calibration needs a prior: measure one or pass --prior")
        calibrated = calibrate_predictions(predictions, space, prior, method=method)
        settings = {
            "method": method,
            "of": entry["key"],
            "prior": dict(zip(space.labels, map(float, prior), strict=True)),
            "prior_source": prior_source,
            **({"iterations": iterations} if method == "batch" else {}),
        }
        config = {name: entry[name] for name in ("dataset", "recognizer", "label_set")}
        new_key = record_config(run_dir, {**config, "calibration": settings})["key"]
        store.write(new_key, calibrated, gold, replace=True)
    summary = rebuild_report(run_dir, config_key=new_key, n_bootstrap=n_bootstrap, seed=seed)
    effect = calibration_effect(
        gold, predictions, calibrated, space, n_bootstrap=n_bootstrap, seed=seed
    )
    effect.update(
        method=method, source_key=entry["key"], config_key=new_key, prior=settings["prior"]
    )
    out_dir = summary.report_files["json"].parent
    files = _write_effect(effect, space, out_dir)
    return CalibratedRun(entry["key"], new_key, out_dir, effect, {**summary.report_files, **files})


def _write_effect(effect: Mapping[str, Any], space: LabelSpace, out_dir: Path) -> dict[str, Path]:
    """calibration.json, calibration.md and figures/calibration_shares.png in out_dir."""
    from emovlm.eval.plots import grouped_shares_png

    labels = list(space.labels)
    png = grouped_shares_png(
        labels,
        {
            "gold": [effect["gold_share"][lab] for lab in labels],
            "before": [effect["before"]["predicted_share"][lab] for lab in labels],
            "after": [effect["after"]["predicted_share"][lab] for lab in labels],
            "prior": [effect["prior"][lab] for lab in labels],
        },
        title=f"Answer shares before and after {effect['method']} calibration",
    )
    paths = {
        "calibration_json": out_dir / "calibration.json",
        "calibration_markdown": out_dir / "calibration.md",
        "calibration_figure": out_dir / "figures" / "calibration_shares.png",
    }
    paths["calibration_figure"].parent.mkdir(parents=True, exist_ok=True)
    paths["calibration_figure"].write_bytes(png)
    paths["calibration_json"].write_text(
        json.dumps(effect, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    paths["calibration_markdown"].write_text(_markdown(effect, labels), encoding="utf-8")
    return paths


def _markdown(effect: Mapping[str, Any], labels: Sequence[str]) -> str:
    """Before/after table with paired Δ intervals, then the prior and shares per label."""
    before, after, delta = effect["before"], effect["after"], effect["delta"]
    sink = effect["before_sink"]
    lines = [
        f"# {effect['method'].capitalize()} calibration of configuration {effect['source_key']}",
        "",
        f"Calibrated rows: configuration {effect['config_key']}. {effect['n_changed_top']} of "
        f"{effect['n']} top answers changed. Δ intervals are paired bootstrap intervals "
        f"({effect['n_bootstrap']} resamples, seed {effect['seed']}).",
        "",
        "| metric | before | after | Δ [95% CI] |",
        "|---|---|---|---|",
    ]
    names = {"uar": "UAR", "war": "WAR", "macro_f1": "macro F1"}
    if sink is not None:
        names["sink_share"] = f"answers '{sink}' (the sink before)"
    for key, name in names.items():
        change = delta[key]
        lines.append(
            f"| {name} | {percent(before[key])} | {percent(after[key])} | "
            f"{100 * change['value']:+.1f} pts {interval(change['ci'])} |"
        )
    lines.append(
        f"| KL(answers ‖ gold) | {before['kl_pred_gold']:.3f} | {after['kl_pred_gold']:.3f} | |"
    )
    after_sink = (after.get("sink") or {}).get("label", "none")
    lines += [
        f"| sink | {sink or 'none'} | {after_sink} | |",
        "",
        "| label | prior | gold share | answers before | answers after |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {label} | {effect['prior'][label]:.4f} | {percent(effect['gold_share'][label])} | "
        f"{percent(before['predicted_share'][label])} | "
        f"{percent(after['predicted_share'][label])} |"
        for label in labels
    ]
    lines += ["", "![answer shares](figures/calibration_shares.png)"]
    return "\n".join(lines) + "\n"


def _plain(options: Mapping[str, Any]) -> dict[str, Any]:
    """Recognizer options as JSON-able values (secrets are never among them: keys are by name)."""
    return {k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in options.items()}


@with_recognizer_options
def calibrate(
    run_dir: RunFolder,
    method: Annotated[str, typer.Option(help="contextual | batch")],
    key: ConfigKey = None,
    prior: Annotated[
        Path | None,
        typer.Option(help="contextual: prior JSON ({label: p}); default: measure it now"),
    ] = None,
    content_free: Annotated[
        str,
        typer.Option(help=f"contextual: content-free images, from {', '.join(CONTENT_FREE_KINDS)}"),
    ] = ",".join(CONTENT_FREE_KINDS),
    iterations: Annotated[
        int,
        typer.Option(help="batch: >1 refines the prior until the mean answer is uniform"),
    ] = 1,
    bootstrap: Bootstrap = 1000,
    seed: BootstrapSeed = 0,
    *,
    recognizer_options: dict[str, Any],
) -> None:
    """Divide out the model's label prior from stored scores; report UAR, WAR and the sink.

    batch: the prior is the run's mean predicted distribution. contextual: the prior is the
    model's answer to content-free images (grey, black, white), measured now by rebuilding the
    run's recognizer from config.yaml (recognizer options override stored settings, e.g.
    --base-url) unless --prior gives it. The evaluation samples are never predicted again: the
    corrected rows become a new configuration of the run folder, reported under reports/KEY/.

    Examples:

        emovlm calibrate runs/dfew-test-f1-specialist --method batch

        emovlm calibrate runs/dfew-test-f1-specialist --method contextual
    """
    from emovlm.run.config import label_space_of

    if method not in METHODS:
        raise InputError(f"unknown --method {method!r}; choose one of: {', '.join(METHODS)}")
    if method == "contextual":
        if prior is not None:
            space = label_space_of(source_entry(run_dir, key))
            vector, source = read_prior(prior, space), str(prior)
        else:
            kinds = [kind.strip() for kind in content_free.split(",") if kind.strip()]
            measured, path = measure_prior(
                run_dir, key=key, overrides=recognizer_options, kinds=kinds
            )
            space = label_space_of(source_entry(run_dir, key))
            vector = np.array([measured["prior"][label] for label in space.labels])
            source = str(path)
    else:
        if prior is not None or recognizer_options:
            raise InputError(
                "batch calibration takes its prior from the run's scores: drop --prior and the "
                "recognizer options"
            )
        vector, source = None, ""
    result = calibrate_run(
        run_dir,
        method=method,
        key=key,
        prior=vector,
        prior_source=source,
        iterations=iterations,
        n_bootstrap=bootstrap,
        seed=seed,
    )
    _print_effect(Console(), result)


def _print_effect(console: Console, result: CalibratedRun) -> None:
    effect = result.effect
    console.print(
        f"{effect['method']} calibration of {result.source_key} → configuration "
        f"{result.config_key} ({effect['n_changed_top']} of {effect['n']} top answers changed)",
        highlight=False,
    )
    for key, name in (("uar", "UAR"), ("war", "WAR"), ("macro_f1", "macro F1")):
        change = effect["delta"][key]
        console.print(
            f"  {name:9s} {percent(effect['before'][key])} → {percent(effect['after'][key])}  "
            f"(Δ {100 * change['value']:+.1f} pts {interval(change['ci'])})",
            highlight=False,
        )
    sink = effect["before_sink"]
    if sink is not None:
        console.print(
            f"  answers '{sink}' (sink before): {percent(effect['before']['sink_share'])} → "
            f"{percent(effect['after']['sink_share'])}",
            highlight=False,
        )
    console.print(f"  report: {result.files['calibration_markdown']}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `calibrate` command."""
    app.command()(calibrate)
