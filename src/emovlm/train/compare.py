"""Side-by-side per-class recall of two or more trained variants (natural vs balanced, base vs adapter)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emovlm.eval.report import markdown_text, percent

HEADLINE = {"uar": "UAR", "war": "WAR", "macro_f1": "macro-F1"}
"""Headline metrics listed under the per-class rows, with their printed names."""


def compare_recall(
    metrics: Mapping[str, Mapping[str, Any]], train_counts: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Per-class recall (and support) of each variant, plus each variant's headline metrics.

    `metrics` maps a variant name to its scored metrics (`score_predictions` output); the first
    variant is the reference that the others' changes are measured against.
    """
    names = list(metrics)
    first = metrics[names[0]]
    rows = []
    for label in first["labels"]:
        recall = {name: metrics[name]["per_class"][label]["recall"] for name in names}
        rows.append(
            {
                "label": label,
                "train": None if train_counts is None else int(train_counts.get(label, 0)),
                "support": int(first["per_class"][label]["support"]),
                "recall": recall,
                "change": {n: recall[n] - recall[names[0]] for n in names[1:]},
            }
        )
    headline = {
        key: {name: metrics[name].get(key) for name in names} for key in HEADLINE if key in first
    }
    return {"variants": names, "per_class": rows, "headline": headline}


def comparison_markdown(comparison: Mapping[str, Any], title: str) -> str:
    """The comparison as a Markdown table: one row per class, one recall column per variant."""
    names = comparison["variants"]
    changes = [f"Δ {n}" for n in names[1:]]
    header = ["class", "train n", "test n", *(f"recall {n}" for n in names), *changes]
    lines = [
        f"# {markdown_text(title)}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in comparison["per_class"]:
        tested = row["support"] > 0
        cells = [
            markdown_text(row["label"]),
            "—" if row["train"] is None else str(row["train"]),
            str(row["support"]),
            *(percent(row["recall"][n]) if tested else "—" for n in names),
            *(_signed(row["change"][n]) if tested else "—" for n in names[1:]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for key, values in comparison["headline"].items():
        cells = [HEADLINE[key], "", "", *(percent(values[n]) for n in names)]
        cells += [_signed(values[n] - values[names[0]]) for n in names[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Classes without test samples have no recall (—) and are left out of UAR; each "
        "variant's full report (confusion, sink, intervals) is under eval/."
    )
    return "\n".join(lines) + "\n"


def write_comparison(comparison: Mapping[str, Any], out_dir: Path, title: str) -> dict[str, Path]:
    """Write comparison.json and comparison.md to `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "comparison.json", "markdown": out_dir / "comparison.md"}
    paths["json"].write_text(json.dumps(comparison, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(comparison_markdown(comparison, title), encoding="utf-8")
    return paths


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:+.1f}"
