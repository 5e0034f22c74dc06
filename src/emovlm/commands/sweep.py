"""`emovlm sweep`: run a recognizer over a grid of settings on the same samples and compare them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from emovlm.commands._dataset_options import DATA_PANEL, adapter_options, with_dataset_options
from emovlm.commands._recognizer_options import with_recognizer_options
from emovlm.commands._run_options import BatchSize, Bootstrap, BootstrapSeed, Limit, Progress
from emovlm.errors import InputError

_SWEEP = "Sweep"
EXPERIMENTS = ("fps", "shuffle", "msce", "grid")


def _listed(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated flag values as one list: ['1,5', '10'] → ['1', '5', '10']."""
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


def _grid(pairs: list[str] | None) -> dict[str, list[Any]]:
    """--grid OPTION=V1,V2 flags → {option: [values read as YAML scalars]}."""
    grid: dict[str, list[Any]] = {}
    for pair in pairs or []:
        key, sep, values = pair.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise InputError(f"--grid expects OPTION=VALUE,VALUE, got {pair!r}")
        grid[key.strip().replace("-", "_")] = [yaml.safe_load(v) for v in _listed([values])]
    return grid


def _experiment(
    name: str, recognizer: str | None, values: list[str], grid: list[str] | None, options: dict
) -> Any:
    """The experiment the flags describe."""
    from emovlm.run.sweep import (
        DEFAULT_MSCE_VARIANTS,
        PAPER_FPS,
        default_frames,
        fps_experiment,
        grid_experiment,
        msce_experiment,
        shuffle_experiment,
    )

    if name not in EXPERIMENTS:
        raise InputError(
            f"--experiment {name!r} is unknown; choose one of: {', '.join(EXPERIMENTS)}"
        )
    if grid and name != "grid":
        raise InputError("--grid goes with --experiment grid")
    chosen = recognizer or "specialist"
    if name == "fps":
        try:
            rates = [float(v) for v in values] or list(PAPER_FPS)
        except ValueError:
            raise InputError(
                f"--values of the fps experiment are frame rates, got {values}"
            ) from None
        return fps_experiment(chosen, rates)
    if name == "shuffle":
        if not all(v.isdigit() for v in values):
            raise InputError(
                f"--values of the shuffle experiment are seeds (0, 1, …), got {values}"
            )
        frames = options.pop("frames", None) or default_frames(chosen)
        return shuffle_experiment(chosen, frames, [int(v) for v in values] or [0])
    if name == "msce":
        if recognizer not in (None, "vlm", "msce"):
            raise InputError(
                "the msce experiment runs the vlm and msce recognizers; drop --recognizer"
            )
        return msce_experiment(
            int(options.pop("keyframes", 8)),
            int(options.pop("per_gap", 4)),
            values or DEFAULT_MSCE_VARIANTS,
        )
    if values:
        raise InputError("--experiment grid takes --grid OPTION=V1,V2, not --values")
    return grid_experiment(chosen, _grid(grid))


@with_dataset_options
@with_recognizer_options
def sweep_command(
    dataset: Annotated[
        str,
        typer.Option(help="dfew | ferv39k | mafw | folder | manifest", rich_help_panel=DATA_PANEL),
    ],
    root: Annotated[Path, typer.Option(help="dataset root folder", rich_help_panel=DATA_PANEL)],
    split: Annotated[str, typer.Option(help="train | test", rich_help_panel=DATA_PANEL)] = "test",
    fold: Annotated[
        int, typer.Option(help="fold 1-5 for DFEW and MAFW", rich_help_panel=DATA_PANEL)
    ] = 1,
    experiment: Annotated[
        str, typer.Option(help="fps | shuffle | msce | grid", rich_help_panel=_SWEEP)
    ] = "fps",
    recognizer: Annotated[
        str | None,
        typer.Option(help="recognizer swept (default specialist)", rich_help_panel=_SWEEP),
    ] = None,
    values: Annotated[
        list[str] | None,
        typer.Option(
            help="fps: frame rates (default 1,5,10,15,20,25); shuffle: seeds (default 0); msce: "
            "variants (default sparse,msce-vlm,msce-specialist); comma-separated or repeated",
            rich_help_panel=_SWEEP,
        ),
    ] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            help="grid experiment: OPTION=V1,V2 (repeatable; every combination runs)",
            rich_help_panel=_SWEEP,
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            help="setting the differences are taken to (default: the first)", rich_help_panel=_SWEEP
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="run folder (default runs/sweep-DATASET-EXPERIMENT)", rich_help_panel=_SWEEP
        ),
    ] = None,
    limit: Limit = None,
    batch_size: BatchSize = None,
    bootstrap: Bootstrap = 1000,
    seed: BootstrapSeed = 0,
    progress: Progress = True,
    *,
    dataset_flags: dict[str, Any],
    recognizer_options: dict[str, Any],
) -> None:
    """Run one recognizer setting after another on the same samples, then compare them.

    Every setting is stored under its own configuration key in one run folder (rerun the same
    command to resume). Differences to the reference setting come with paired bootstrap
    intervals. Writes sweep.json, sweep.md and sweep.png; `emovlm report RUN --key KEY`
    gives any setting's full report.

    Examples:
      emovlm sweep --dataset mafw --root /data/MAFW --experiment fps --values 1,5,10,15,20,25
      emovlm sweep --dataset dfew --root /data/DFEW --experiment shuffle --frames fps:5
      emovlm sweep --dataset dfew --root /data/DFEW --experiment msce --backend openai \\
          --base-url http://127.0.0.1:8000/v1 --model Qwen2.5-VL-7B-Instruct --keyframes 8
      emovlm sweep --dataset dfew --root /data/DFEW --experiment grid \\
          --grid frames=fps:5,all --grid aggregate=mean,peak
    """
    from emovlm.data.base import open_dataset
    from emovlm.run.sweep import run_sweep

    options = dict(recognizer_options)
    plan = _experiment(experiment, recognizer, _listed(values), grid, options).with_reference(
        reference
    )
    data = open_dataset(dataset, root, split=split, fold=fold, **adapter_options(dataset_flags))
    result = run_sweep(
        data,
        plan,
        run_dir or Path(f"runs/sweep-{dataset}-{experiment}"),
        dataset_config=data.config(),
        options=options,
        batch_size=batch_size,
        limit=limit,
        n_bootstrap=bootstrap,
        seed=seed,
        progress=progress,
    )
    _print(result.summary)
    Console().print(f"  table: {result.files['md']}\n  plot: {result.files['png']}")


def _print(summary: dict[str, Any]) -> None:
    """The sweep table: each metric per setting with its interval, and Δ macro F1 (paired)."""
    from emovlm.run.sweep import with_interval

    table = Table(title=f"sweep {summary['experiment']} · {summary['n']} samples")
    for column in ("setting", *summary["metrics"], f"Δ macro_f1 vs {summary['reference']}"):
        table.add_column(column)
    for s in summary["settings"]:
        cells = [with_interval(s["metrics"][m], s["ci"].get(m)) for m in summary["metrics"]]
        difference = (s["difference"] or {}).get("macro_f1")
        shown = (
            with_interval(difference["diff"], difference["ci"], signed=True) if difference else "—"
        )
        table.add_row(s["name"], *cells, shown)
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the `sweep` command."""
    app.command("sweep")(sweep_command)
