"""`emovlm score`: score a predictions file (CSV/JSONL of gold labels and answers) and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from emovlm.errors import InputError
from emovlm.eval.report import headline_rows, interval, percent, sink_sentence, write_report
from emovlm.eval.scoring import score_file
from emovlm.labels import LABEL_SPACES, get_label_space


def score(
    predictions: Annotated[
        Path, typer.Argument(help="CSV, TSV or JSONL file: one row per sample with gold and answer")
    ],
    label_set: Annotated[
        str, typer.Option("--label-set", "-l", help=f"label space: {', '.join(LABEL_SPACES)}")
    ],
    gt_column: Annotated[str, typer.Option(help="column holding the gold label(s)")] = "gt",
    pred_column: Annotated[
        str,
        typer.Option(help="column holding the answer: free text or a ranked list 'a, b, c'"),
    ] = "pred",
    id_column: Annotated[
        str | None,
        typer.Option(
            help="column of sample ids (default: id, sample_id or name if present, else row number)"
        ),
    ] = None,
    multi_label: Annotated[
        bool | None,
        typer.Option(
            "--multi-label/--single-label",
            help="score label sets per sample (default: as the label set; emotic is multi-label)",
        ),
    ] = None,
    match: Annotated[
        str,
        typer.Option(help="word: whole words and synonyms | contains: label name anywhere in text"),
    ] = "word",
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", help="bootstrap resamples for 95% CIs (0: none)")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="random seed of the bootstrap")] = 0,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the full metrics as JSON to this file")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="write metrics.json, report.md and a self-contained report.html here"),
    ] = None,
) -> None:
    """Score answers against gold labels: UAR/WAR/macro F1 with 95% CIs, per class, sink, rates.

    Out-of-set, unparsed and failed answers count as wrong and are reported, never dropped.

    Example (real GPT-4V answers on DFEW):

        emovlm score dfew.csv -l dfew --gt-column gt --pred-column gpt4v --report out/
    """
    if bootstrap < 0:
        raise InputError(f"--bootstrap must be 0 (no intervals) or more, not {bootstrap}")
    multi = get_label_space(label_set).multi_label if multi_label is None else multi_label
    metrics, answers, gold = score_file(
        predictions,
        label_set,
        gt_column=gt_column,
        pred_column=pred_column,
        id_column=id_column,
        multi_label=multi,
        match=match,
        n_bootstrap=bootstrap,
        seed=seed,
    )
    console = Console()
    _print_summary(console, metrics)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
        console.print(f"metrics: {json_out}", soft_wrap=True, highlight=False)
    if report is not None:
        paths = write_report(
            metrics,
            report,
            title=f"{predictions.name} ({label_set})",
            predictions=answers,
            gold=gold,
        )
        console.print(f"report: {paths['html']}", soft_wrap=True, highlight=False)


def _print_summary(console: Console, metrics: dict) -> None:
    """Headline metrics with CIs, the per-class table, the sink and the non-label answers."""
    headline = Table(title=f"{metrics['n']} samples · {metrics['label_set']}", title_justify="left")
    for column in ("metric", "value", "95% CI"):
        headline.add_column(column, justify="left" if column == "metric" else "right")
    for name, value, bounds in headline_rows(metrics):
        headline.add_row(name, percent(value), interval(bounds))
    console.print(headline)

    per_class = Table(title="Per class", title_justify="left")
    for column in ("label", "support", "gold", "predicted", "precision", "recall", "F1"):
        per_class.add_column(column, justify="left" if column == "label" else "right")
    sink = (metrics.get("sink") or {}).get("label")
    for label in metrics["labels"]:
        row = metrics["per_class"][label]
        per_class.add_row(
            f"[bold red]{label} (sink)[/]" if label == sink else label,
            str(row["support"]),
            percent(metrics["gold_share"][label]),
            percent(metrics["predicted_share"][label]),
            percent(row["precision"]),
            percent(row["recall"]),
            percent(row["f1"]),
        )
    console.print(per_class)
    console.print(sink_sentence(metrics), soft_wrap=True, highlight=False, markup=False)
    outside = list(metrics["out_of_set_answers"].items())[:8]
    if outside:
        listed = ", ".join(f"{answer!r} ×{count}" for answer, count in outside)
        console.print(f"Answers outside the label set: {listed}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add the `score` command."""
    app.command()(score)
