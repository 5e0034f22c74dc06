"""`emovlm score`: score a predictions file (CSV/JSONL of gold labels and answers) and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from emovlm.commands._recognizer_options import with_options
from emovlm.commands._run_options import Bootstrap, BootstrapSeed, with_answer_columns
from emovlm.commands._settings_options import field_options
from emovlm.errors import InputError
from emovlm.eval.report import headline_rows, interval, percent, sink_sentence, write_report
from emovlm.eval.scoring import score_file
from emovlm.labels import EXTRACT_MODES, LABEL_SPACES, get_label_space
from emovlm.recognizers.settings import JudgeSettings
from emovlm.types import Prediction, Status

_JUDGE = "Answer judge"
JUDGE_FIELDS = ("backend", "model", "base_url", "api_key_env", "cache", "cache_dir")
"""The judge's settings this command offers, as --judge-FIELD (the cache's as they are)."""


def _judge_flag(name: str) -> str:
    """The score command's flag for a judge setting: --judge-model for model."""
    return name if name.startswith("cache") else f"judge_{name}"


@with_answer_columns
@with_options(field_options([JudgeSettings], _JUDGE, JUDGE_FIELDS, _judge_flag), "judge_options")
def score(
    predictions: Annotated[
        Path, typer.Argument(help="CSV, TSV or JSONL file: one row per sample with gold and answer")
    ],
    label_set: Annotated[
        str, typer.Option("--label-set", "-l", help=f"label space: {', '.join(LABEL_SPACES)}")
    ],
    multi_label: Annotated[
        bool | None,
        typer.Option(
            "--multi-label/--single-label",
            help="score label sets per sample (default: as the label set; emotic is multi-label)",
        ),
    ] = None,
    match: Annotated[
        str,
        typer.Option(
            help="word: prose, negation, answer cues, lists (docs/metrics.md) | contains: the "
            "paper's script, case-sensitive label name anywhere | contains-any-case"
        ),
    ] = "word",
    extract: Annotated[
        str,
        typer.Option(
            help="rules | rules+judge: a text LLM re-reads answers the rules leave ambiguous or "
            "unparsed | judge: it re-reads every answer",
            rich_help_panel=_JUDGE,
        ),
    ] = "rules",
    explain: Annotated[
        bool, typer.Option("--explain", help="print, per row, how the answer was read")
    ] = False,
    bootstrap: Bootstrap = 1000,
    seed: BootstrapSeed = 0,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the full metrics as JSON to this file")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="write metrics.json, report.md and a self-contained report.html here"),
    ] = None,
    *,
    columns: dict[str, Any],
    judge_options: dict[str, Any],
) -> None:
    """Score answers against gold labels: UAR/WAR/macro F1 with 95% CIs, per class, sink, rates.

    Out-of-set, unparsed and failed answers count as wrong and are reported, never dropped.

    Example (real GPT-4V answers on DFEW):

        emovlm score dfew.csv -l dfew --gt-column gt --pred-column gpt4v --report out/

    Show how each answer was read, and let a served text LLM re-read the ambiguous ones:

        emovlm score answers.csv -l dfew --explain --extract rules+judge \
          --judge-backend openai --judge-base-url http://127.0.0.1:8000/v1 --judge-model qwen
    """
    if extract not in EXTRACT_MODES:
        raise InputError(
            f"--extract {extract!r} is unknown; choose one of: {', '.join(EXTRACT_MODES)}"
        )
    space = get_label_space(label_set)
    multi = space.multi_label if multi_label is None else multi_label
    judge = None
    if extract != "rules":
        from emovlm.recognizers.judge import AnswerJudge  # loads transformers: only when asked

        given = {name.removeprefix("judge_"): value for name, value in judge_options.items()}
        judge = AnswerJudge(space, extract=extract, **given)  # type: ignore[arg-type]
    metrics, answers, gold = score_file(
        predictions,
        label_set,
        **columns,
        multi_label=multi,
        match=match,
        n_bootstrap=bootstrap,
        seed=seed,
        review=judge.review if judge else None,
    )
    if judge is not None:
        metrics["judge"] = judge.config()
    console = Console()
    if explain:
        _print_readings(console, answers, gold)
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


def _print_readings(
    console: Console, answers: list[Prediction], gold: list[tuple[str, ...]]
) -> None:
    """One line per row: gold, the reading (status, top, runners-up), what decided it, negations."""
    for prediction, gold_labels in zip(answers, gold, strict=True):
        reading = (prediction.extra or {}).get("parse") or {}
        parts = [
            f"{prediction.sample_id}: gold {', '.join(gold_labels)} → {Status(prediction.status).value}",
            f"{prediction.top or '—'}",
        ]
        if len(prediction.labels) > 1:
            parts.append(f"(then {', '.join(prediction.labels[1:4])})")
        if reading:
            parts.append(f"by {reading.get('cue') or 'none'}")
            if reading.get("evidence"):
                parts.append(f"in {reading['evidence']!r}")
            if reading.get("negated"):
                parts.append(f"negated: {', '.join(reading['negated'])}")
        judge = (prediction.extra or {}).get("judge")
        if judge:
            verdict = judge.get("error") or ", ".join(judge.get("labels", [])) or "none"
            parts.append(f"judge: {verdict} ({'agrees' if judge.get('agrees') else 'differs'})")
        console.print(" ".join(parts), soft_wrap=True, highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add the `score` command."""
    app.command()(score)
