"""`emovlm balance`: a seeded class-balanced evaluation subset of a dataset split, as a manifest."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from emovlm.commands._dataset_options import adapter_options, with_dataset_options
from emovlm.errors import InputError


@with_dataset_options
def balance(
    dataset: Annotated[str, typer.Option(help="dfew | ferv39k | mafw | folder | manifest")],
    root: Annotated[Path, typer.Option(help="dataset root folder")],
    per_class: Annotated[
        str, typer.Option(help="samples per class: a number, or 'min' (the smallest class)")
    ],
    out: Annotated[
        Path, typer.Option(help="manifest to write (.csv); a summary .json goes beside it")
    ],
    split: Annotated[str, typer.Option(help="split to balance")] = "test",
    fold: Annotated[int, typer.Option(help="fold (DFEW, MAFW)")] = 1,
    seed: Annotated[int, typer.Option(help="seed of the per-class draws")] = 0,
    allow_fewer: Annotated[
        bool,
        typer.Option(help="take every sample of classes smaller than --per-class (else: error)"),
    ] = False,
    *,
    dataset_flags: dict[str, Any],
) -> None:
    """Draw the same number of samples from every class (seeded) and save them as a manifest.

    The manifest keeps the dataset's sample ids, so results on it sit beside the natural split's.
    Paths are relative to --root; evaluate it with the command this prints.

    Example:

        emovlm balance --dataset dfew --root /data/DFEW --fold 1 --per-class min --out dfew-bal.csv
    """
    from emovlm.data.balanced import balanced_samples, parse_per_class, write_manifest
    from emovlm.data.base import open_dataset

    if out.suffix.lower() != ".csv":
        raise InputError(f"--out {out}: write the manifest as a .csv file")
    data = open_dataset(dataset, root, split=split, fold=fold, **adapter_options(dataset_flags))
    samples, selection = balanced_samples(
        list(data.samples()),
        data.label_space,
        parse_per_class(per_class),
        seed,
        allow_fewer=allow_fewer,
    )
    relative = write_manifest(samples, out, root)
    command = [
        "emovlm", "eval", "--dataset", "manifest", "--root", str(root.resolve()),
        "--dataset-option", f"manifest={out.resolve()}", "--label-set", data.label_space.name,
    ]  # fmt: skip
    if not relative:
        command += ["--dataset-option", "allow_outside_root=true"]
    summary = {
        "manifest": str(out.resolve()),
        "source": data.config(),
        "label_set": data.label_space.name,
        **selection.summary(),
        "eval_command": shlex.join(command),
    }
    summary_path = out.with_suffix(".json")
    summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    _print(Console(), summary, selection.taken, summary_path)


def _print(console: Console, summary: dict, taken: dict[str, int], summary_path: Path) -> None:
    table = Table(title=f"{summary['n']} samples, seed {summary['seed']}", title_justify="left")
    for column in ("label", "available", "taken"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for label, count in taken.items():
        table.add_row(label, str(summary["available"][label]), str(count))
    console.print(table)
    console.print(f"manifest: {summary['manifest']}", soft_wrap=True, highlight=False)
    console.print(f"summary: {summary_path}", soft_wrap=True, highlight=False)
    console.print(f"evaluate it: {summary['eval_command']}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `balance` command."""
    app.command()(balance)
