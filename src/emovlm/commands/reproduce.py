"""`emovlm reproduce`: run a paper's recipe of experiments, step by step, and report beside its numbers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from emovlm.commands._dataset_options import parse_pairs

if TYPE_CHECKING:
    from emovlm.reproduce.plan import Plan


def _listed(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated flag values as one list."""
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


def reproduce_command(
    recipe: Annotated[
        str,
        typer.Argument(help="a shipped recipe (paper-a-dfer, paper-b-emotic) or a recipe file"),
    ],
    root: Annotated[Path, typer.Option(help="dataset root folder (as the recipe's dataset)")],
    dataset: Annotated[
        str | None,
        typer.Option(
            help="run the recipe on another dataset of the same kind, e.g. mafw for paper-a-dfer "
            "(its split and fold stay the recipe's)"
        ),
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="VLM backend of the VLM steps: openai | transformers")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="served model name, or a local model folder")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="run only these steps (comma-separated or repeated; turns on steps "
            "that are off by default, such as finetune)"
        ),
    ] = None,  # fmt: skip
    skip: Annotated[
        list[str] | None, typer.Option(help="leave these steps out (comma-separated or repeated)")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            help="recognizer option KEY=VALUE for every step whose recognizer takes it "
            "(repeatable), e.g. clip_model=/models/clip, concurrency=16"
        ),
    ] = None,  # fmt: skip
    out: Annotated[
        Path | None, typer.Option(help="output folder (default runs/reproduce-RECIPE)")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="samples per recognizer call (default: each recognizer's)")
    ] = None,
    bootstrap: Annotated[
        int | None,
        typer.Option(help="bootstrap resamples of every step (default: the recipe's)"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="list the steps with their request and token estimates; no call")
    ] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Run a recipe of a source paper's experiments and write one report beside its numbers.

    Every step runs into its own run folder under --out. Rerun the same command after a crash or
    Ctrl-C: finished steps are skipped, the interrupted one resumes. Everything is checked
    before the first step runs (recipe keys, dataset files, the model or server).

    Examples:
      emovlm reproduce paper-a-dfer --root /data/DFEW --backend openai \\
          --base-url http://127.0.0.1:8000/v1 --model Qwen2.5-VL-7B-Instruct --dry-run
      emovlm reproduce paper-a-dfer --root /data/DFEW ... --skip fps,msce
      emovlm reproduce paper-b-emotic --root /data/EMOTIC ... --option clip_model=/models/clip
      emovlm reproduce paper-a-dfer --dataset mafw --root /data/MAFW ...
      emovlm reproduce my-recipe.yaml --root /data/MAFW ...
    """
    from emovlm.reproduce.plan import Target, choose_steps, make_plan
    from emovlm.reproduce.recipe import load_recipe

    loaded = load_recipe(recipe)
    if dataset is not None:
        loaded = replace(loaded, dataset={**loaded.dataset, "name": dataset})
    if bootstrap is not None:
        loaded = replace(loaded, bootstrap=bootstrap)
    steps = choose_steps(loaded, _listed(only), _listed(skip))
    target = Target(
        root=root,
        backend=backend,
        model=model,
        base_url=base_url,
        options=parse_pairs(option, "--option"),
        batch_size=batch_size,
    )
    folder = out or Path(f"runs/reproduce-{loaded.name}" + (f"-{dataset}" if dataset else ""))
    plan = make_plan(loaded, target, folder, steps, reach_model=not dry_run)
    console = Console()
    if dry_run:
        _print_estimates(plan, console)
        return
    from emovlm.reproduce.report import write_recipe_report
    from emovlm.reproduce.steps import run_plan

    run_plan(plan, progress=progress, say=console.print)
    files = write_recipe_report(plan)
    console.print(f"report: {files['html']}\n        {files['markdown']}")


def _print_estimates(plan: Plan, console: Console) -> None:
    """The steps and what each would cost the VLM."""
    from emovlm.reproduce.estimate import estimate_plan

    rows = estimate_plan(plan)
    table = Table(title=f"{plan.recipe.name}: steps and their cost (before the response cache)")
    for column in ("step", "kind", "samples", "VLM requests", "visual tokens", "note"):
        table.add_column(column, justify="right" if column in ("samples",) else "left")
    for row in rows:
        table.add_row(
            row.step,
            row.kind,
            str(row.samples),
            f"{row.requests:,}",
            f"{row.visual_tokens:,}",
            row.note,
        )
    table.add_row(
        "total", "", "", f"{sum(r.requests for r in rows):,}",
        f"{sum(r.visual_tokens for r in rows):,}", "",
    )  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the `reproduce` command."""
    app.command("reproduce")(reproduce_command)
