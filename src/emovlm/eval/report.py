"""Write a scored run as metrics.json, a Markdown summary and a self-contained HTML report."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from emovlm.errors import InputError
from emovlm.eval.plots import (
    confusion_png,
    recall_frequency_png,
    shares_png,
    timeline_png,
    trajectory_png,
)
from emovlm.eval.tables import describe_gaps, per_second
from emovlm.types import Prediction, Status

MAX_TIMELINES = 24
"""Most per-frame emotion timelines drawn in one report."""

TIMELINE_BINS = 400
"""Most bins of a per-frame timeline: an hour of video is drawn in 9-second bins."""

MAX_EXAMPLES = 60
"""Most example answers listed in one report."""
RAW_CHARS = 200
"""Characters of raw model text kept per example."""
SMOKE_TEST_NOTICE = (
    "the text LLM is the smoke-test fallback (base Gemma 3 270M): its labels are not meaningful. "
    "Rerun with --llm-model set to an instruction-tuned model or a served one."
)
"""What a report says when its recognizer config marks a model `smoke_test_only`."""


def notices(recognizer_config: Any) -> list[str]:
    """Warnings a report shows for a recognizer config: a smoke-test-only model anywhere in it."""

    def smoke(value: Any) -> bool:
        if isinstance(value, Mapping):
            return bool(value.get("smoke_test_only")) or any(smoke(v) for v in value.values())
        return False

    return [SMOKE_TEST_NOTICE] if smoke(recognizer_config) else []


_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def percent(value: float | None, digits: int = 1) -> str:
    """0.3684 → '36.8%'; None → '—'."""
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def interval(bounds: Sequence[float] | None) -> str:
    """[0.348, 0.392] → '[34.8, 39.2]' (percent points); None or NaN bounds → ''."""
    if not bounds or any(b != b for b in bounds):  # NaN: no interval could be computed
        return ""
    return f"[{100 * bounds[0]:.1f}, {100 * bounds[1]:.1f}]"


def markdown_text(text: Any) -> str:
    """Text safe inside a Markdown table cell: no raw HTML, no pipes, one line."""
    escaped = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(escaped.replace("|", "\\|").split())


def error(value: float | None) -> str:
    """A mean absolute error: 1.2345 → '1.23'; None → '—'."""
    return "—" if value is None else f"{value:.2f}"


_TEMPLATES.filters.update(percent=percent, interval=interval, md=markdown_text, error=error)


def sink_sentence(metrics: Mapping) -> str:
    """One plain sentence naming the sink: 'Sink: neutral — 38.5% of answers vs 22.8% of gold…'."""
    sink = metrics.get("sink")
    if not sink:
        return "No sink: no label is answered more often than it occurs in the gold labels."
    if metrics.get("multi_label"):
        head = (
            f"Sink: {sink['label']} — predicted for {percent(sink['predicted_share'])} of samples "
            f"vs {percent(sink['gold_share'])} in gold"
        )
    else:
        head = (
            f"Sink: {sink['label']} — {percent(sink['predicted_share'])} of answers "
            f"vs {percent(sink['gold_share'])} of gold"
        )
    sources = ", ".join(
        f"{label} {count}" for label, count in list(sink["absorbed_from"].items())[:3]
    )
    absorbed = f"{sink['absorbed']} samples of other classes ({percent(sink['absorbed_share'])})"
    tail = f"; {absorbed} went to it"
    return head + tail + (f", most from {sources}." if sources else ".")


def write_report(
    metrics: dict,
    out_dir: Path,
    *,
    title: str,
    predictions: Sequence[Prediction] = (),
    gold: Sequence[Sequence[str]] = (),
    n_predictions: int | None = None,
    n_timelines: int | None = None,
    warnings: Sequence[str] = (),
    frames: pd.DataFrame | None = None,
    execution: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write metrics.json, report.md (+ figures/*.png) and a self-contained report.html to out_dir.

    `predictions[i]` pairs with `gold[i]`; they feed the example table and the emotion timelines
    (from `extra["trajectory"]`). For a large run, pass only the rows the report shows, in run
    order — those of `ExamplePicker.ids` and the first MAX_TIMELINES with a trajectory — and the
    run's number of predictions and of trajectories as `n_predictions` and `n_timelines`.
    `warnings` (e.g. from `notices`) head both reports. `frames` is a per-frame table
    (`eval.tables`) of the samples whose timelines are drawn first, binned so that an hour of
    video stays readable; gaps listed in predictions' `extra["gaps"]` are reported. `execution`
    (the recognizer's `run_stats()`: effective concurrency, waits, …) is listed in an Execution
    section. Returns the written paths by kind.
    """
    if gold and len(gold) != len(predictions):
        raise InputError(
            f"report {title!r}: {len(gold)} gold entries but {len(predictions)} predictions; "
            "pass them in pairs, or no gold at all"
        )
    out_dir = Path(out_dir)
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "shares": shares_png(metrics),
        "confusion": confusion_png(metrics),
        "recall_frequency": recall_frequency_png(metrics),
    }
    framed = [] if frames is None else list(dict.fromkeys(frames["sample_id"].astype(str)))
    timelines = (_frame_timelines(frames, framed) + _timelines(predictions))[:MAX_TIMELINES]
    examples = _examples(predictions, gold)
    context = {
        "title": title,
        "warnings": list(warnings),
        "m": metrics,
        "sink_sentence": sink_sentence(metrics),
        "headline": headline_rows(metrics),
        "per_class": _per_class_rows(metrics),
        "out_of_set": list(metrics.get("out_of_set_answers", {}).items())[:20],
        "figures": {name: base64.b64encode(png).decode("ascii") for name, png in figures.items()},
        "timelines": [(sid, base64.b64encode(png).decode("ascii")) for sid, png in timelines],
        "n_timelines": (
            len(framed) + sum(1 for p in predictions if _trajectory(p) is not None)
            if n_timelines is None
            else n_timelines
        ),
        "max_timelines": MAX_TIMELINES,
        "gaps": _gaps(predictions),
        "examples": examples,
        "n_predictions": len(predictions) if n_predictions is None else n_predictions,
        "execution": list((execution or {}).items()),
    }
    paths = {
        "json": out_dir / "metrics.json",
        "markdown": out_dir / "report.md",
        "html": out_dir / "report.html",
        "figures": figures_dir,
    }
    for name, png in figures.items():
        (figures_dir / f"{name}.png").write_bytes(png)
    paths["json"].write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    for kind in ("markdown", "html"):
        template = _TEMPLATES.get_template(
            "report.md.j2" if kind == "markdown" else "report.html.j2"
        )
        paths[kind].write_text(template.render(context), encoding="utf-8")
    return paths


def headline_rows(metrics: Mapping) -> list[tuple[str, float | None, list[float] | None]]:
    """(name, value, 95% interval or None) of the summary metrics present, in reading order."""
    names = [
        ("UAR (macro recall)", "uar"),
        ("WAR (micro recall)" if metrics.get("multi_label") else "WAR (accuracy)", "war"),
        ("macro precision", "macro_precision"),
        ("macro F1", "macro_f1"),
        ("Hamming loss", "hamming"),
        ("subset accuracy", "subset_accuracy"),
        ("Jaccard (samples)", "jaccard"),
        ("mAP (sklearn AP)", "map"),
        ("mAP (EMOTIC AP)", "map_emotic"),
        ("mAP (EMOTIC AP, rank by rank)", "map_emotic_rank"),
        ("head recall", "head_recall"),
        ("tail recall", "tail_recall"),
        ("out-of-set rate", "out_of_set_rate"),
        ("unparsed rate", "unparsed_rate"),
        ("failed rate", "failed_rate"),
    ]
    ci = metrics.get("ci", {})
    return [(label, metrics[key], ci.get(key)) for label, key in names if key in metrics]


def _per_class_rows(metrics: Mapping) -> list[dict[str, Any]]:
    sink = (metrics.get("sink") or {}).get("label")
    return [
        {
            "label": label,
            **metrics["per_class"][label],
            "gold_share": metrics["gold_share"][label],
            "predicted_share": metrics["predicted_share"][label],
            "is_sink": label == sink,
        }
        for label in metrics["labels"]
    ]


def _trajectory(prediction: Prediction) -> Mapping | None:
    """The prediction's per-frame trajectory, checked, or None when it has none."""
    trajectory = (prediction.extra or {}).get("trajectory")
    if trajectory is None:
        return None
    try:
        times, labels, probs = trajectory["times"], trajectory["labels"], trajectory["probs"]
        shape_ok = len(probs) == len(times) and all(len(row) == len(labels) for row in probs)
    except (KeyError, TypeError):
        shape_ok = False
    if not shape_ok:
        raise InputError(
            f"sample {prediction.sample_id}: extra['trajectory'] must be "
            '{"times": [t...], "labels": [name...], "probs": [[p per label] per time]}'
        )
    return trajectory


def _frame_timelines(frames: pd.DataFrame | None, ids: list[str]) -> list[tuple[str, bytes]]:
    """Timelines of the first MAX_TIMELINES samples of a per-frame table, in bins of at most
    TIMELINE_BINS per sample (one frame's spacing for short clips)."""
    drawn = []
    labels = frames.emo.labels if frames is not None else []
    for sample_id in ids[:MAX_TIMELINES]:
        rows = frames[frames["sample_id"] == sample_id]
        times = np.unique(rows["time"].to_numpy())
        spacing = float(np.min(np.diff(times))) if len(times) > 1 else 1.0
        seconds = max(float(times[-1] - times[0]) / TIMELINE_BINS, spacing)
        drawn.append((sample_id, timeline_png(sample_id, per_second(rows, seconds), labels)))
    return drawn


def _gaps(predictions: Sequence[Prediction]) -> list[tuple[str, str]]:
    """(sample, "12.0-15.3 s no face; …") for shown predictions with gaps in their results."""
    described = ((p.sample_id, describe_gaps(p)) for p in predictions)
    return [(sample_id, spans) for sample_id, spans in described if spans][:MAX_TIMELINES]


def _timelines(predictions: Sequence[Prediction]) -> list[tuple[str, bytes]]:
    drawn = []
    for prediction in predictions:
        trajectory = _trajectory(prediction)
        if trajectory is not None:
            drawn.append((prediction.sample_id, trajectory_png(prediction.sample_id, trajectory)))
            if len(drawn) == MAX_TIMELINES:
                break
    return drawn


_GROUPS = ("odd", "wrong", "right")


class ExamplePicker:
    """Picks, from predictions fed chunk by chunk in run order, the ids the example table can show:
    the first MAX_EXAMPLES of each group (odd answers, wrong ones, right ones)."""

    def __init__(self) -> None:
        self._taken = dict.fromkeys(_GROUPS, 0)
        self.ids: list[str] = []

    def add(self, predictions: Sequence[Prediction], gold: Sequence[Sequence[str]]) -> None:
        """Look at the next chunk; `predictions[i]` pairs with `gold[i]`."""
        for prediction, gold_labels in zip(predictions, gold, strict=True):
            group, _ = _group(prediction, tuple(gold_labels))
            if self._taken[group] < MAX_EXAMPLES:
                self._taken[group] += 1
                self.ids.append(prediction.sample_id)


def _group(prediction: Prediction, gold_labels: tuple[str, ...]) -> tuple[str, bool]:
    """The example group of a prediction (odd: not ok; wrong; right) and whether it is right."""
    status = Status(prediction.status)
    correct = status is Status.OK and prediction.top in gold_labels
    return ("odd" if status is not Status.OK else ("right" if correct else "wrong")), correct


def _examples(predictions: Sequence[Prediction], gold: Sequence[Sequence[str]]) -> list[dict]:
    """Up to MAX_EXAMPLES rows: odd answers (not ok) first, then wrong ones, then right ones."""
    groups: dict[str, list[dict]] = {name: [] for name in _GROUPS}
    for i, prediction in enumerate(predictions):
        gold_labels = tuple(gold[i]) if gold else ()
        status = Status(prediction.status)
        group, correct = _group(prediction, gold_labels)
        if len(groups[group]) >= MAX_EXAMPLES:
            continue
        raw = prediction.raw or prediction.reason
        groups[group].append(
            {
                "id": prediction.sample_id,
                "gold": ", ".join(gold_labels),
                "answer": ", ".join(prediction.labels[:3]),
                "status": status.value,
                "correct": correct,
                "raw": raw if len(raw) <= RAW_CHARS else raw[:RAW_CHARS] + "…",
            }
        )
    quota = MAX_EXAMPLES // len(groups)
    chosen = [row for rows in groups.values() for row in rows[:quota]]
    spare = [row for rows in groups.values() for row in rows[quota:]]
    return chosen + spare[: MAX_EXAMPLES - len(chosen)]
