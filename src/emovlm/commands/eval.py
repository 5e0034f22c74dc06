"""`emovlm eval`: run a recognizer over a dataset split into a resumable run folder, then report."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from emovlm.commands._dataset_options import DATA_PANEL, parse_pairs, with_dataset_options
from emovlm.commands._recognizer_options import build_recognizer, with_recognizer_options
from emovlm.commands._run_options import (
    RUN_PANEL,
    BatchSize,
    Bootstrap,
    BootstrapSeed,
    Limit,
    Progress,
    in_panel,
)
from emovlm.errors import InputError

_SCALE = "Scale and faults"


def _load_config(path: Path | None) -> dict[str, Any]:
    """Read a YAML run configuration (same keys as the flags, with dashes or underscores)."""
    if path is None:
        return {}
    if not path.is_file():
        raise InputError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise InputError(
            f"{path} is not valid YAML{line} ({problem}); fix it, or give the options as flags"
        ) from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: a config file must be a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


@with_dataset_options
@with_recognizer_options
def eval_command(
    split: Annotated[
        str | None, in_panel(DATA_PANEL, "train | test (| val for EMOTIC) (default: test)")
    ] = None,
    recognizer: Annotated[
        str | None,
        in_panel(
            RUN_PANEL,
            "specialist (offline default) | vlm | msce | caption-llm | narracap-llm | "
            "majority | random | weighted-random",
        ),
    ] = None,
    fit_split: Annotated[
        str,
        in_panel(
            RUN_PANEL,
            "split whose labels recognizers with fit() learn from (majority, weighted-random)",
        ),
    ] = "train",
    run_dir: Annotated[
        Path | None,
        in_panel(RUN_PANEL, "run folder (default: runs/DATASET-SPLIT-fFOLD-RECOGNIZER)"),
    ] = None,
    resume: Annotated[
        bool, in_panel(RUN_PANEL, "continue a run folder that already has results")
    ] = False,
    retry_failed: Annotated[
        bool, in_panel(RUN_PANEL, "with --resume, rerun only the samples that failed")
    ] = False,
    limit: Limit = None,
    batch_size: BatchSize = None,
    bootstrap: Bootstrap = 1000,
    seed: BootstrapSeed = 0,
    thumbnails: Annotated[
        int,
        in_panel(
            RUN_PANEL,
            "small JPEG thumbnails of what the model saw kept per sample, for `emovlm view` "
            "(0: none; recognizers offer up to 4)",
        ),
    ] = 4,
    config: Annotated[
        Path | None, in_panel(RUN_PANEL, "YAML file with any of these options (flags win)")
    ] = None,
    progress: Progress = True,
    dry_run: Annotated[
        bool,
        in_panel(
            RUN_PANEL,
            "count the requests, images or video seconds and estimated tokens the run would "
            "send (vlm, contextual-vlm, msce), with no model call and no run folder",
        ),
    ] = False,
    executor: Annotated[
        str,
        in_panel(_SCALE, "local (this machine) | ray (a pool of Ray actors; see docs/scale.md)"),
    ] = "local",
    workers: Annotated[
        int | None,
        in_panel(
            _SCALE,
            "local: worker processes for CPU-bound recognizers (default: none, in this "
            "process); ray: actors (default: one per CPU)",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        in_panel(
            _SCALE, "Ray cluster to join, e.g. auto or HOST:6379 (default: start a local Ray)"
        ),
    ] = None,
    ray_gpus_per_worker: Annotated[float, in_panel(_SCALE, "GPUs each Ray actor reserves")] = 0.0,
    stop_after_failures: Annotated[
        int, in_panel(_SCALE, "stop the run when this many samples in a row failed (0: never)")
    ] = 32,
    *,
    dataset_flags: dict[str, Any],
    recognizer_options: dict[str, Any],
) -> None:
    """Evaluate a recognizer on a dataset split; results land in a resumable run folder.

    The run folder holds config.yaml, store.sqlite (one row per sample, written as each batch
    finishes), metrics.json, report.md and report.html. Rerun with --resume after a crash.

    Examples:
      emovlm eval --dataset dfew --root /data/DFEW --fold 1
      emovlm eval --dataset manifest --root clips --dataset-option manifest=clips.csv --label-set dfew
      emovlm eval --dataset mafw --root /data/MAFW --recognizer vlm --backend openai \\
          --base-url http://127.0.0.1:8000/v1 --model Qwen2.5-VL-7B-Instruct --frames uniform:8
    """
    from emovlm.data.base import open_dataset
    from emovlm.run.executors import make_executor
    from emovlm.run.runner import evaluate

    file_config = _load_config(config)
    recognizer_options = {**file_config.pop("recognizer_options", {}), **recognizer_options}
    dataset_options = {
        **file_config.pop("dataset_options", {}),
        **parse_pairs(dataset_flags.get("dataset_option"), "--dataset-option"),
    }
    settings = {
        "dataset": dataset_flags.get("dataset"),
        "root": dataset_flags.get("root"),
        "split": split,
        "fold": dataset_flags.get("fold"),
        "label_set": dataset_flags.get("label_set"),
        "recognizer": recognizer,
        "run_dir": run_dir,
        "limit": limit,
    }
    for key, value in file_config.items():
        if key not in settings:
            raise InputError(
                f"{config}: unknown key {key!r}; use the flag names, e.g. dataset, root, fold"
            )
        if settings[key] is None:
            settings[key] = value
    if not settings["dataset"] or not settings["root"]:
        raise InputError("give --dataset and --root (or a --config file with dataset: and root:)")
    name = str(settings["dataset"])
    split_name = str(settings["split"] or "test")
    fold_number = int(settings["fold"] or 1)
    recognizer_name = str(settings["recognizer"] or "specialist")
    if settings["label_set"]:
        dataset_options["label_set"] = settings["label_set"]
    data = open_dataset(
        name, Path(settings["root"]), split=split_name, fold=fold_number, **dataset_options
    )
    model = build_recognizer(recognizer_name, data.label_space, recognizer_options)
    if dry_run:
        _print_dry_run(model, itertools.islice(data.samples(), settings["limit"]))
        return
    if hasattr(model, "fit"):
        model.fit(
            open_dataset(
                name, Path(settings["root"]), split=fit_split, fold=fold_number, **dataset_options
            )
        )
    folder = Path(
        settings["run_dir"] or f"runs/{name}-{split_name}-f{fold_number}-{recognizer_name}"
    )
    summary = evaluate(
        data,
        model,
        folder,
        dataset_config=data.config(),
        batch_size=batch_size or getattr(model, "batch_size", 8),
        limit=settings["limit"],
        resume=resume,
        retry_failed=retry_failed,
        progress=progress,
        n_bootstrap=bootstrap,
        seed=seed,
        executor=make_executor(
            executor,
            workers=workers,
            ray_address=ray_address,
            gpus_per_worker=ray_gpus_per_worker,
            # workers rebuild the recognizer from its options; a fitted one travels as itself
            recognizer_factory=None
            if hasattr(model, "fit")
            else functools.partial(
                build_recognizer, recognizer_name, data.label_space, recognizer_options
            ),
        ),
        stop_after_failures=stop_after_failures,
        thumbnails=thumbnails,
    )
    _print_summary(summary)


def _print_dry_run(model: Any, samples: Any) -> None:
    """What the run would send: requests, images or video seconds, estimated tokens."""
    from emovlm.run.dry_run import plan_run

    plan = plan_run(model, samples)
    console = Console()
    console.print(
        f"[bold]dry run[/]: {plan.samples} samples → {plan.requests:,} requests, no model called"
    )
    if plan.images:
        console.print(f"  images          {plan.images:,}")
    if plan.videos:
        console.print(
            f"  videos          {plan.videos:,} ({plan.video_frames:,} frames, "
            f"{plan.video_seconds:,.1f} s of video)"
        )
    rule = plan.family if plan.family != "unknown" else "unknown family: default per image/frame"
    console.print(f"  visual tokens   ~{plan.visual_tokens:,} ({rule})")
    console.print(f"  text tokens     ~{plan.text_tokens:,} (4 characters a token)")
    console.print(f"  output tokens   ≤{plan.max_output_tokens:,}")
    for reason in plan.unreadable[:10]:
        console.print(f"  [yellow]unreadable[/] {reason}")
    if len(plan.unreadable) > 10:
        console.print(f"  … and {len(plan.unreadable) - 10} more unreadable samples")


def _print_summary(summary: Any) -> None:
    """One screen of results: counts, headline metrics with intervals, the sink, the report path."""
    console = Console()
    m = summary.metrics
    console.print(
        f"[bold]{summary.n_total}[/] samples ({summary.n_new} new, {summary.n_done_before} resumed, "
        f"{summary.n_failed} failed) → {summary.run_dir}"
    )
    ci = m.get("ci", {})
    for key in ("uar", "war", "macro_f1"):
        if key in m:
            bounds = f"  [dim](95% CI {ci[key][0]:.4f}–{ci[key][1]:.4f})[/]" if key in ci else ""
            console.print(f"  {key:9s} {m[key]:.4f}{bounds}")
    if summary.report_files:
        console.print(f"  report: {summary.report_files.get('html', '')}")


def register(app: typer.Typer) -> None:
    """Add the `eval` command."""
    app.command("eval")(eval_command)
