"""`emovlm diagnose`: the long-tail diagnosis of a run folder or a predictions file, with plots."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from emovlm.commands._run_options import Bootstrap, ConfigKey, with_answer_columns
from emovlm.errors import InputError
from emovlm.eval.longtail import DEFINITIONS, LANGUAGES, diagnose_longtail
from emovlm.eval.plots import confusion_png, labelled_scatter_png, shares_png
from emovlm.eval.report import interval, markdown_text, percent, sink_sentence
from emovlm.labels import LABEL_SPACES, LabelSpace, get_label_space
from emovlm.types import Prediction

_LANGUAGE_NAMES = {"en": "English", "zh": "Chinese"}
_PAIR_NAMES = {
    "f1_vs_frequency_en": "F1 ~ English word frequency",
    "f1_vs_frequency_zh": "F1 ~ Chinese word frequency",
    "f1_vs_gold_share": "F1 ~ share in the evaluation set",
    "frequency_en_vs_gold_share": "English word frequency ~ share in the evaluation set",
    "frequency_zh_vs_gold_share": "Chinese word frequency ~ share in the evaluation set",
}


@with_answer_columns
def diagnose(
    source: Annotated[
        Path,
        typer.Argument(help="run folder (emovlm eval --run-dir) or predictions file (CSV/JSONL)"),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="output folder (default for a run: its report folder/diagnosis)"),
    ] = None,
    label_set: Annotated[
        str | None,
        typer.Option("--label-set", "-l", help=f"predictions file: {', '.join(LABEL_SPACES)}"),
    ] = None,
    key: ConfigKey = None,
    balanced: Annotated[
        str | None,
        typer.Option(
            help="also diagnose a seeded balanced subset: N per class, or 'min' (smallest class)"
        ),
    ] = None,
    balance_seed: Annotated[int, typer.Option(help="seed of the balanced subset")] = 0,
    bootstrap: Bootstrap = 1000,
    seed: Annotated[int, typer.Option(help="seed of the bootstrap and permutations")] = 0,
    *,
    columns: dict[str, Any],
) -> None:
    """Per-class F1 against the label word's frequency (English, Chinese) and the class's share.

    Writes longtail.json, longtail.md and figures/ (F1 vs frequency per language, F1 vs share,
    confusion, answer shares) and prints Spearman's rho with 95% intervals and the sink.

    Example (real GPT-4V answers on DFEW, natural and 29-per-class balanced):

        emovlm diagnose dfew.csv -l dfew --pred-column gpt4v --out diag/ --balanced min
    """
    if source.is_dir():
        metrics, predictions, gold, space, default_out = _from_run(source, key, bootstrap, seed)
    else:
        if label_set is None:
            raise InputError(f"{source} is a predictions file: name its label set with --label-set")
        from emovlm.eval.scoring import score_file

        space = get_label_space(label_set)
        metrics, predictions, gold = score_file(
            source,
            label_set,
            **columns,
            multi_label=space.multi_label,
            n_bootstrap=bootstrap,
            seed=seed,
        )
        default_out = None
    target = out or default_out
    if target is None:
        raise InputError("give --out: the folder for the diagnosis of a predictions file")
    diagnosis = diagnose_longtail(
        metrics, gold, predictions, space, n_bootstrap=bootstrap, seed=seed
    )
    diagnosis["source"] = str(source)
    balanced_metrics = None
    if balanced is not None:
        balanced_metrics = _add_balanced(
            diagnosis, gold, predictions, space, balanced, balance_seed, bootstrap, seed
        )
    paths = write_diagnosis(diagnosis, metrics, target, balanced_metrics=balanced_metrics)
    _print_summary(Console(), diagnosis, metrics, paths)


def _from_run(
    run_dir: Path, key: str | None, n_bootstrap: int, seed: int
) -> tuple[dict, list[Prediction], list[tuple[str, ...]], LabelSpace, Path]:
    """Scored rows of one configuration of a run folder and its default diagnosis folder."""
    from emovlm.eval.scoring import score_predictions
    from emovlm.run.config import find_config, label_space_of, report_dir
    from emovlm.run.store import RunStore

    entry = find_config(run_dir, key)
    with RunStore(run_dir, create=False) as store:
        predictions, gold = store.rows(entry["key"])
    if not predictions:
        raise InputError(f"{run_dir} has no rows for configuration {entry['key']}")
    space = label_space_of(entry)
    metrics = score_predictions(gold, predictions, space, n_bootstrap=n_bootstrap, seed=seed)
    return metrics, predictions, gold, space, report_dir(run_dir, entry["key"]) / "diagnosis"


def _add_balanced(
    diagnosis: dict[str, Any],
    gold: Sequence[Sequence[str]],
    predictions: Sequence[Prediction],
    space: LabelSpace,
    per_class: str,
    balance_seed: int,
    n_bootstrap: int,
    seed: int,
) -> dict:
    """Diagnose the seeded balanced subset too (under diagnosis["balanced"]); return its metrics."""
    from emovlm.data.balanced import balanced_selection, parse_per_class
    from emovlm.eval.scoring import score_predictions

    if any(len(labels) != 1 for labels in gold):
        raise InputError("--balanced needs one gold label per sample (a single-label set)")
    selection = balanced_selection(
        [labels[0] for labels in gold], space, parse_per_class(per_class), balance_seed
    )
    subset_gold = [gold[i] for i in selection.indices]
    subset = [predictions[i] for i in selection.indices]
    metrics = score_predictions(subset_gold, subset, space, n_bootstrap=n_bootstrap, seed=seed)
    balanced = diagnose_longtail(
        metrics, subset_gold, subset, space, n_bootstrap=n_bootstrap, seed=seed
    )
    diagnosis["balanced"] = {**balanced, "selection": selection.summary()}
    return metrics


def write_diagnosis(
    diagnosis: Mapping[str, Any],
    metrics: Mapping[str, Any],
    out_dir: Path,
    *,
    balanced_metrics: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write longtail.json, longtail.md and figures/*.png; return the paths by kind."""
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    figures = _figures(diagnosis, metrics, "")
    if balanced_metrics is not None:
        figures.update(_figures(diagnosis["balanced"], balanced_metrics, "_balanced"))
    for name, png in figures.items():
        (figures_dir / f"{name}.png").write_bytes(png)
    paths = {"json": out_dir / "longtail.json", "markdown": out_dir / "longtail.md"}
    paths["json"].write_text(json.dumps(diagnosis, indent=2, ensure_ascii=False), encoding="utf-8")
    paths["markdown"].write_text(_markdown(diagnosis, metrics, list(figures)), encoding="utf-8")
    return {**paths, "figures": figures_dir}


def _figures(diagnosis: Mapping[str, Any], metrics: Mapping[str, Any], suffix: str) -> dict:
    """F1 vs word frequency per language, F1 vs share, confusion and answer shares."""
    labels = diagnosis["classes_in_correlations"]
    rows = [diagnosis["per_class"][label] for label in labels]
    f1 = [row["f1"] for row in rows]
    sink = (diagnosis.get("sink") or {}).get("label")
    where = " (balanced)" if suffix else ""
    figures = {}
    for lang in LANGUAGES:
        rho = diagnosis["correlations"][f"f1_vs_frequency_{lang}"]["rho"]
        figures[f"f1_vs_frequency_{lang}{suffix}"] = labelled_scatter_png(
            labels,
            [row["frequency"][lang] for row in rows],
            f1,
            xlabel=f"{_LANGUAGE_NAMES[lang]} word frequency (wordfreq, log scale)",
            ylabel="F1",
            title=f"F1 vs {_LANGUAGE_NAMES[lang]} word frequency{where}: rho {_rho(rho)}",
            log_x=True,
            highlight=sink,
        )
    rho = diagnosis["correlations"]["f1_vs_gold_share"]["rho"]
    figures[f"f1_vs_share{suffix}"] = labelled_scatter_png(
        labels,
        [row["gold_share"] for row in rows],
        f1,
        xlabel="share of the evaluation set",
        ylabel="F1",
        title=f"F1 vs class share{where}: rho {_rho(rho)}",
        highlight=sink,
    )
    figures[f"confusion{suffix}"] = confusion_png(metrics)
    figures[f"shares{suffix}"] = shares_png(metrics)
    return figures


def _rho(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def _markdown(diagnosis: Mapping[str, Any], metrics: Mapping[str, Any], figures: list[str]) -> str:
    """The diagnosis as a Markdown page: headline, sink, correlations, per-class table, subset."""
    head = diagnosis["headline"]
    lines = [
        f"# Long-tail diagnosis: {markdown_text(diagnosis.get('source', ''))}",
        "",
        f"{diagnosis['n']} samples, label set {diagnosis['label_set']}: UAR "
        f"{percent(head['uar'])}, WAR {percent(head['war'])}, "
        f"macro F1 {percent(head['macro_f1'])}.",
        "",
        f"**{markdown_text(sink_sentence(metrics))}**",
        "",
        f"## Spearman correlations over {len(diagnosis['classes_in_correlations'])} classes",
        "",
        "| pair | rho | 95% CI (sample bootstrap) | p (class permutation) |",
        "|---|---|---|---|",
    ]
    for name, result in diagnosis["correlations"].items():
        ci = result["ci"]
        bounds = "" if not ci else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"
        p = "—" if result["p_value"] is None else f"{result['p_value']:.3f}"
        lines.append(f"| {_PAIR_NAMES[name]} | {_rho(result['rho'])} | {bounds} | {p} |")
    lines += [
        "",
        "## Per class",
        "",
        "| label | support | gold share | answer share | F1 [95% CI] | en word | en zipf "
        "| zh word | zh zipf |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    sink = (diagnosis.get("sink") or {}).get("label")
    for label, row in diagnosis["per_class"].items():
        name = f"**{markdown_text(label)} (sink)**" if label == sink else markdown_text(label)
        lines.append(
            f"| {name} | {row['support']} | {percent(row['gold_share'])} | "
            f"{percent(row['predicted_share'])} | {percent(row['f1'])} {interval(row['f1_ci'])} | "
            f"{' / '.join(row['words']['en'])} | {row['zipf']['en']:.2f} | "
            f"{' / '.join(row['words']['zh'])} | {row['zipf']['zh']:.2f} |"
        )
    if "balanced" in diagnosis:
        lines += _balanced_lines(diagnosis)
    lines += ["", "## Definitions", ""]
    lines += [f"- **{name}**: {text}" for name, text in DEFINITIONS.items()]
    lines += ["", "## Figures", ""]
    lines += [f"![{name}](figures/{name}.png)" for name in figures]
    return "\n".join(lines) + "\n"


def _balanced_lines(diagnosis: Mapping[str, Any]) -> list[str]:
    """Natural vs balanced subset, side by side."""
    balanced = diagnosis["balanced"]
    selection = balanced["selection"]
    sides = {"natural": diagnosis, "balanced": balanced}

    def sink_of(d: Mapping[str, Any]) -> str:
        sink = d.get("sink")
        return "none" if not sink else f"{sink['label']} ({percent(sink['predicted_share'])})"

    rows = [
        ("samples", lambda d: str(d["n"])),
        ("UAR", lambda d: percent(d["headline"]["uar"])),
        ("WAR", lambda d: percent(d["headline"]["war"])),
        ("macro F1", lambda d: percent(d["headline"]["macro_f1"])),
        ("sink (answer share)", sink_of),
    ]
    rows += [
        (f"rho {_PAIR_NAMES[name]}", lambda d, n=name: _rho(d["correlations"][n]["rho"]))
        for name in ("f1_vs_frequency_en", "f1_vs_frequency_zh")
    ]
    lines = [
        "",
        f"## Natural vs balanced ({selection['per_class']} per class, seed {selection['seed']})",
        "",
        "| | natural | balanced |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {cell(sides['natural'])} | {cell(sides['balanced'])} |" for name, cell in rows
    ]
    absent = selection["absent_classes"]
    if absent:
        lines += ["", f"Classes without samples, left out: {', '.join(absent)}."]
    return lines


def _print_summary(
    console: Console, diagnosis: Mapping[str, Any], metrics: Mapping[str, Any], paths: Mapping
) -> None:
    console.print(sink_sentence(metrics), soft_wrap=True, highlight=False, markup=False)
    for name, result in diagnosis["correlations"].items():
        ci = result["ci"]
        bounds = "" if not ci else f"  (95% CI {ci[0]:+.2f} to {ci[1]:+.2f})"
        console.print(f"  rho {_PAIR_NAMES[name]}: {_rho(result['rho'])}{bounds}", highlight=False)
    if "balanced" in diagnosis:
        head = diagnosis["balanced"]["headline"]
        console.print(
            f"  balanced subset ({diagnosis['balanced']['n']} samples): "
            f"UAR {percent(head['uar'])}, WAR {percent(head['war'])}",
            highlight=False,
        )
    console.print(f"diagnosis: {paths['markdown']}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `diagnose` command."""
    app.command()(diagnose)
