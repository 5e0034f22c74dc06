"""One report per recipe (report.md, report.html, figures/): the user's numbers beside the papers'.

It reads only what finished steps wrote (their step.json and the files named there), so it can
be rebuilt at any time and shows every finished step, whichever run finished it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from emovlm.eval.longtail import LANGUAGES
from emovlm.eval.plots import (
    confusion_png,
    curves_png,
    grouped_shares_png,
    labelled_scatter_png,
    sweep_png,
)
from emovlm.eval.report import markdown_text, sink_sentence
from emovlm.reproduce.plan import Plan
from emovlm.reproduce.published import published, same_model
from emovlm.reproduce.recipe import VLM_RECOGNIZERS
from emovlm.reproduce.steps import read_marker
from emovlm.run.sweep import with_interval

_TEMPLATE = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
).get_template("report.html.j2")
_LANGUAGE_NAMES = {"en": "English", "zh": "Chinese"}


@dataclass
class Table:
    """A table of text cells."""

    header: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    """A titled part of the report: sentences, tables and figures (name → PNG bytes)."""

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)


@dataclass
class _Finished:
    """The finished steps' records and the files they name, read once."""

    plan: Plan
    records: dict[str, dict[str, Any]]

    def result(self, name: str) -> dict[str, Any] | None:
        record = self.records.get(name)
        return None if record is None else record["result"]

    def file(self, name: str, kind: str) -> dict[str, Any] | None:
        """A JSON file a finished step names in its record (kind: metrics_file, summary_file...)."""
        result = self.result(name)
        if not result or not result.get(kind):
            return None
        return _json(self.plan.folder(self.plan.recipe.step(name)) / result[kind])

    def metrics(self, name: str) -> dict[str, Any] | None:
        return self.file(name, "metrics_file")

    def of_kind(self, kind: str, **spec: Any) -> list[str]:
        return [
            s.name
            for s in self.plan.recipe.steps
            if s.name in self.records
            and s.kind == kind
            and all(s.spec.get(k) == v for k, v in spec.items())
        ]

    def title(self, name: str) -> str:
        return str(self.plan.recipe.step(name).spec.get("title") or name)


def write_recipe_report(plan: Plan) -> dict[str, Path]:
    """Write report.md, report.html and figures/ of the recipe into its output folder."""
    records = {
        s.name: marker
        for s in plan.recipe.steps
        if (marker := read_marker(plan.folder(s))) is not None
    }
    finished = _Finished(plan, records)
    sections = [_steps_section(finished)]
    if plan.recipe.published == "paper-a":
        sections += _paper_a(finished)
    elif plan.recipe.published == "paper-b":
        sections += _paper_b(finished)
    return _write(plan, [s for s in sections if s.tables or s.figures or s.text])


def _json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _f(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _steps_section(finished: _Finished) -> Section:
    rows = []
    for step in finished.plan.recipe.steps:
        record = finished.records.get(step.name)
        result = (record or {}).get("result", {})
        state = "finished" if record else ("not run" if step.enabled else "off by default")
        rows.append(
            [step.name, step.kind, finished.title(step.name), state, str(result.get("n", ""))]
        )
    return Section(
        "Steps",
        [
            f"Recipe `{finished.plan.recipe.path}` over {finished.plan.recipe.dataset['name']} at "
            f"`{finished.plan.target.root}`; model: {finished.plan.target.model or '(none)'}.",
            "Each step is a run folder under the output folder; `emovlm report FOLDER` rebuilds "
            "a step's own full report.",
        ],
        [Table(["step", "kind", "what", "state", "samples"], rows)],
    )


def _paper_a(finished: _Finished) -> list[Section]:
    paper = published("paper-a")
    dataset = str(finished.plan.recipe.dataset["name"])
    return [
        _macro_section(finished, paper, dataset),
        _fps_section(finished, paper),
        _shuffle_section(finished),
        _msce_section(finished, paper, dataset),
        _longtail_section(finished),
        _confusion_section(finished),
        _calibration_section(finished),
        _finetune_section(finished),
    ]


def _macro_section(finished: _Finished, paper: Mapping, dataset: str) -> Section:
    table = paper["macro"]
    model = finished.plan.target.model
    rows = []
    for name in finished.of_kind("eval"):
        m = finished.metrics(name)
        if m is None:
            continue
        recognizer = finished.plan.recipe.step(name).recognizer
        who = model if recognizer in VLM_RECOGNIZERS and model else recognizer
        rows.append(
            [f"{finished.title(name)}: {who}", "this run", _f(m.get("macro_precision")),
             _f(m.get("macro_recall")), with_interval(m["macro_f1"], m.get("ci", {}).get("macro_f1")),
             _f(m.get("war"))]
        )  # fmt: skip
    for system, row in table["rows"].items():
        values = row.get(dataset)
        if values is None:
            continue
        mark = " ← your model's family" if same_model(system, model) else ""
        rows.append(
            [f"{system} ({row['kind']}){mark}", "published", *(_f(v, 4) for v in values), "—"]
        )
    return Section(
        f"Macro precision / recall / F1 on {dataset.upper()} beside the published numbers",
        [f"Published: {table['source']}. Intervals: 95% bootstrap over samples."],
        [Table(["system", "source", "macro P", "macro R", "macro F1", "WAR"], rows)]
        if rows
        else [],
    )


def _fps_section(finished: _Finished, paper: Mapping) -> Section:
    names = finished.of_kind("sweep", experiment="fps")
    if not names:
        return Section("Macro F1 against frame rate")
    summary = finished.file(names[0], "summary_file")
    curve = {float(k): v for k, v in paper["fps"]["curve"].items()}
    rows, xs, ys = [], [], []
    for s in summary["settings"]:
        xs.append(float(s["value"]))
        ys.append(s["metrics"]["macro_f1"])
        rows.append(
            [f"{s['value']:g}", with_interval(s["metrics"]["macro_f1"], s["ci"].get("macro_f1")),
             _f(curve.get(float(s["value"])), 2), f"{s['cost_per_clip']['visual_tokens']:.0f}"]
        )  # fmt: skip
    label = f"published: {paper['fps']['model']} on {paper['fps']['dataset'].upper()}"
    figure = curves_png(
        {"this run": (xs, ys), label: (list(curve), list(curve.values()))},
        xlabel="frames per second",
        ylabel="macro F1",
        title="Macro F1 against frame rate",
    )
    return Section(
        "Macro F1 against frame rate",
        [f"Published: {paper['fps']['source']}."],
        [Table(["fps", "macro F1 (this run)", label, "visual tokens/clip"], rows)],
        {"fps": figure},
    )


def _shuffle_section(finished: _Finished) -> Section:
    rows = []
    for name in finished.of_kind("sweep", experiment="shuffle"):
        summary = finished.file(name, "summary_file")
        for s in summary["settings"]:
            difference = (s.get("difference") or {}).get("macro_f1")
            rows.append(
                [s["recognizer"], s["name"],
                 with_interval(s["metrics"]["macro_f1"], s["ci"].get("macro_f1")),
                 with_interval(difference["diff"], difference["ci"], signed=True)
                 if difference else "—"]
            )  # fmt: skip
    return Section(
        "Frame-shuffle test",
        ["The paper finds shuffling hurts vision-only models a lot and VLMs barely (a bag of "
         "frames). Δ is paired (same bootstrap resamples) against the original order."]
        if rows else [],
        [Table(["recognizer", "order", "macro F1", "Δ vs original"], rows)] if rows else [],
    )  # fmt: skip


def _msce_section(finished: _Finished, paper: Mapping, dataset: str) -> Section:
    names = finished.of_kind("sweep", experiment="msce")
    if not names:
        return Section("Sparse keyframes vs MSCE")
    summary = finished.file(names[0], "summary_file")
    reference = paper["msce"]["rows"].get(dataset, {})
    rows = []
    for s in summary["settings"]:
        difference = (s.get("difference") or {}).get("macro_f1")
        side = {"sparse": "sparse", "msce-vlm": "msce"}.get(s["name"], "")
        rows.append(
            [s["name"], with_interval(s["metrics"]["macro_f1"], s["ci"].get("macro_f1")),
             with_interval(difference["diff"], difference["ci"], signed=True) if difference else "—",
             f"{s['cost_per_clip']['calls']:.2f}", _f(reference.get(side), 4)]
        )  # fmt: skip
    return Section(
        "Sparse keyframes vs MSCE",
        [
            f"Published ({paper['msce']['model']}, {dataset.upper()}): {paper['msce']['source']}. "
            "The paper's MSCE row is set beside msce-vlm (a VLM writes the motion sentences)."
        ],
        [Table(["setting", "macro F1", "Δ vs sparse", "calls/clip", "published macro F1"], rows)],
        {"msce": sweep_png(summary)},
    )


def _longtail_section(finished: _Finished) -> Section:
    names = finished.of_kind("diagnose")
    if not names:
        return Section("Per-class F1 against word frequency")
    diagnosis = finished.file(names[0], "diagnosis_file")
    labels = diagnosis["labels"]
    per_class = diagnosis["per_class"]
    sink = (diagnosis.get("sink") or {}).get("label")
    present = diagnosis["classes_in_correlations"]
    rows = [
        [label, _f(per_class[label]["f1"]) if label in present else "— (no gold)",
         str(per_class[label]["support"]),
         *(f"{per_class[label]['zipf'][lang]:.2f}" for lang in LANGUAGES)]
        for label in labels
    ]  # fmt: skip
    correlations = [
        [pair, _f(c["rho"]), with_interval(c["rho"], c["ci"]) if c["rho"] is not None else "—",
         _f(c["p_value"])]
        for pair, c in diagnosis["correlations"].items()
    ]  # fmt: skip
    figures = {
        f"f1_frequency_{lang}": labelled_scatter_png(
            present,
            [per_class[label]["frequency"][lang] for label in present],
            [per_class[label]["f1"] for label in present],
            xlabel=f"{_LANGUAGE_NAMES[lang]} word frequency",
            ylabel="F1",
            title=f"Per-class F1 against {_LANGUAGE_NAMES[lang]} word frequency",
            log_x=True,
            highlight=sink,
        )
        for lang in LANGUAGES
    }
    return Section(
        "Per-class F1 against word frequency",
        [f"Answers of step {diagnosis_of(finished, names[0])}; Zipf = log10(frequency) + 9. "
         "Spearman rho over the classes present, with bootstrap intervals and permutation p."],
        [Table(["label", "F1", "support", "Zipf en", "Zipf zh"], rows),
         Table(["pair", "rho", "rho [95% CI]", "p"], correlations)],
        figures,
    )  # fmt: skip


def diagnosis_of(finished: _Finished, name: str) -> str:
    """The step a diagnose step read."""
    return str((finished.result(name) or {}).get("of", ""))


def _confusion_section(finished: _Finished) -> Section:
    names = finished.of_kind("eval")
    vlm = [n for n in names if "specialist" not in n and "balanced" not in n] or names
    if not vlm:
        return Section("Confusion matrix and the sink")
    metrics = finished.metrics(vlm[0])
    if metrics is None or "confusion" not in metrics:
        return Section("Confusion matrix and the sink")
    return Section(
        "Confusion matrix and the sink",
        [f"Step {vlm[0]}. {sink_sentence(metrics)}"],
        figures={"confusion": confusion_png(metrics)},
    )


def _calibration_section(finished: _Finished) -> Section:
    names = finished.of_kind("calibrate")
    if not names:
        return Section("Prior correction")
    effect = finished.file(names[0], "calibration_file")
    rows = [
        [metric, _f(effect["before"][metric]), _f(effect["after"][metric]),
         with_interval(effect["delta"][metric]["value"], effect["delta"][metric]["ci"], signed=True)]
        for metric in ("uar", "war", "macro_f1")
    ]  # fmt: skip
    return Section(
        "Prior correction",
        [
            f"Batch calibration of label scores: {effect['n_changed_top']} of {effect['n']} top "
            f"answers changed; the sink before was {effect.get('before_sink') or 'none'}."
        ],
        [Table(["metric", "before", "after", "Δ"], rows)],
    )


def _finetune_section(finished: _Finished) -> Section:
    names = finished.of_kind("finetune")
    comparison = finished.file(names[0], "comparison_file") if names else None
    if comparison is None:
        return Section("Class-balanced LoRA")
    variants = comparison["variants"]
    rows = [
        [row["label"], str(row["train"]), str(row["support"]),
         *(_f(row["recall"][v]) if row["support"] else "—" for v in variants)]
        for row in comparison["per_class"]
    ]  # fmt: skip
    return Section(
        "Class-balanced LoRA",
        [f"Per-class recall of the base model and its adapter (step {names[0]}); the paper "
         "finds balancing raises tail-class recall. Full reports: the step's eval/ folder."],
        [Table(["class", "train n", "test n", *(f"recall {v}" for v in variants)], rows)],
    )  # fmt: skip


def _paper_b(finished: _Finished) -> list[Section]:
    paper = published("paper-b")
    table = paper["table"]
    keys = table["metrics"]
    by_step = {row.get("step"): (system, row) for system, row in table["rows"].items()}
    rows, labels, mine, theirs = [], [], [], []
    for name in finished.of_kind("eval"):
        m = finished.metrics(name)
        if m is None:
            continue
        rows.append(
            [finished.title(name), "this run", *(_pct(m.get(k)) for k in keys), _pct(m.get("map"))]
        )
        match = by_step.get(name)
        if match:
            system, row = match
            rows.append([system, "published", *(f"{v:.2f}" for v in row["values"]), "—"])
            labels.append(name)
            mine.append(m["macro_f1"])
            theirs.append(row["values"][2] / 100)
    for system, row in table["rows"].items():
        if row.get("step") not in finished.records:
            rows.append([system, "published", *(f"{v:.2f}" for v in row["values"]), "—"])
    figures = (
        {"table1_f1": grouped_shares_png(
            labels, {"this run": mine, "published": theirs},
            title="Macro F1: this run vs Paper B's Table I", ylabel="macro F1")}
        if labels else {}
    )  # fmt: skip
    maps = [[system, f"{value:.2f}"] for system, value in paper["map"]["rows"].items()]
    return [
        Section(
            "Paper B, Table I beside this run (percent)",
            [f"Published: {table['source']}. This run scores answers with the paper's rule (a "
             "label counts when its name occurs in the answer) and its bootstrap; mAP (sklearn "
             "AP) only where the recognizer gives label scores."],
            [Table(["system", "source", "macro P", "macro R", "macro F1", "Hamming ↓",
                    "subset acc.", "mAP"], rows)],
            figures,
        ),
        Section("Published EMOTIC mAP (percent)", [f"Source: {paper['map']['source']}."],
                [Table(["system", "mAP"], maps)]),
    ]  # fmt: skip


def _markdown(plan: Plan, sections: Sequence[Section]) -> str:
    lines = [f"# {plan.recipe.title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for sentence in section.text:
            lines += [sentence, ""]
        for table in section.tables:
            lines.append("| " + " | ".join(markdown_text(h) for h in table.header) + " |")
            lines.append("|---" * len(table.header) + "|")
            lines += ["| " + " | ".join(markdown_text(c) for c in row) + " |" for row in table.rows]
            lines.append("")
        for name in section.figures:
            lines += [f"![{name}](figures/{name}.png)", ""]
    return "\n".join(lines)


def _write(plan: Plan, sections: Sequence[Section]) -> dict[str, Path]:
    out = plan.out_dir
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for section in sections:
        for name, png in section.figures.items():
            (figures / f"{name}.png").write_bytes(png)
    paths = {"markdown": out / "report.md", "html": out / "report.html"}
    paths["markdown"].write_text(_markdown(plan, sections), encoding="utf-8")
    encoded = [
        {
            **vars(s),
            "figures": {n: base64.b64encode(p).decode("ascii") for n, p in s.figures.items()},
        }
        for s in sections
    ]
    paths["html"].write_text(
        _TEMPLATE.render(title=plan.recipe.title, sections=encoded), encoding="utf-8"
    )
    return paths
