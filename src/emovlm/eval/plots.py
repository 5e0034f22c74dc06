"""Report figures as PNG bytes: confusion, recall vs gold frequency, shares, timelines, scatters.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global state).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_DPI = 90
_GOLD_COLOR = "#9aa5b1"
_PRED_COLOR = "#3465a4"
_SINK_COLOR = "#cc3333"


def _plain(text: str) -> str:
    """Text shown literally by matplotlib (a `$` would otherwise start math mode)."""
    return text.replace("$", r"\$")


def _figure(width: float, height: float) -> Figure:
    """A new figure; matplotlib is imported on the first plot, not when the CLI starts."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _png(figure: Figure) -> bytes:
    """Render a figure to PNG bytes with the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def confusion_png(metrics: Mapping) -> bytes:
    """Row-normalised confusion matrix: gold rows × answers, out-of-set/unparsed/failed included."""
    rows, columns = metrics["confusion"]["rows"], metrics["confusion"]["columns"]
    counts = np.asarray(metrics["confusion"]["matrix"], dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = 0.45 * len(columns) + 2.5
    figure = _figure(size, 0.45 * len(rows) + 2.0)
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(rows)), rows, fontsize=8)
    axes.axvline(len(rows) - 0.5, color="black", linewidth=0.8)
    axes.set_xlabel("answer")
    axes.set_ylabel("gold")
    if len(columns) <= 16:
        for (i, j), value in np.ndenumerate(shares):
            if value >= 0.005:
                color = "white" if value > 0.55 else "black"
                axes.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=7, color=color)
    figure.colorbar(image, ax=axes, fraction=0.04, label="share of the gold row")
    axes.set_title("Confusion (row-normalised)")
    return _png(figure)


def recall_frequency_png(metrics: Mapping) -> bytes:
    """Per-class recall against gold frequency; head classes filled, tail classes hollow."""
    labels = metrics["labels"]
    gold_share = np.array([metrics["gold_share"][lab] for lab in labels])
    recall = np.array([metrics["per_class"][lab]["recall"] for lab in labels])
    head = np.array([lab in metrics.get("head_labels", ()) for lab in labels])
    figure = _figure(6.0, 4.0)
    axes = figure.subplots()
    axes.scatter(gold_share[head], recall[head], color=_PRED_COLOR, label="head")
    axes.scatter(
        gold_share[~head], recall[~head], facecolor="none", edgecolor=_PRED_COLOR, label="tail"
    )
    for label, x, y in zip(labels, gold_share, recall, strict=True):
        axes.annotate(label, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
    axes.set_xlabel("gold share (frequency of the class)")
    axes.set_ylabel("recall")
    axes.set_ylim(-0.03, 1.03)
    axes.set_xlim(left=0)
    axes.legend(fontsize=8)
    axes.set_title("Per-class recall vs gold frequency")
    return _png(figure)


def shares_png(metrics: Mapping) -> bytes:
    """Predicted vs gold share per label (the sink in red) plus the non-label answer rates."""
    labels = list(metrics["labels"])
    predicted = [metrics["predicted_share"][lab] for lab in labels]
    gold = [metrics["gold_share"][lab] for lab in labels]
    for column in ("out_of_set", "unparsed", "failed"):
        rate = metrics.get(f"{column}_rate", 0.0)
        if rate > 0:
            labels.append(column)
            predicted.append(rate)
            gold.append(0.0)
    sink = (metrics.get("sink") or {}).get("label")
    positions = np.arange(len(labels))
    figure = _figure(max(6.0, 0.5 * len(labels) + 2.0), 4.0)
    axes = figure.subplots()
    axes.bar(positions - 0.2, gold, width=0.4, color=_GOLD_COLOR, label="gold")
    colors = [_SINK_COLOR if lab == sink else _PRED_COLOR for lab in labels]
    axes.bar(positions + 0.2, predicted, width=0.4, color=colors, label="predicted")
    axes.set_xticks(positions, labels, rotation=45, ha="right", fontsize=8)
    axes.set_ylabel("share of samples")
    title = "Predicted vs gold share"
    if sink:
        title += f" (sink: {sink})"
    axes.set_title(title)
    axes.legend(fontsize=8)
    return _png(figure)


def trajectory_png(sample_id: str, trajectory: Mapping[str, Sequence]) -> bytes:
    """Per-frame label probabilities over time for one sample."""
    times = np.asarray(trajectory["times"], dtype=float)
    probs = np.asarray(trajectory["probs"], dtype=float)
    figure = _figure(6.0, 2.6)
    axes = figure.subplots()
    for i, label in enumerate(trajectory["labels"]):
        marker = "." if len(times) < 40 else None
        axes.plot(times, probs[:, i], marker=marker, label=_plain(str(label)))
    axes.set_xlabel("time (s)")
    axes.set_ylabel("probability")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(f"Emotion timeline: {_plain(sample_id)}", fontsize=9)
    axes.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(figure)


def timeline_png(sample_id: str, summary: pd.DataFrame, labels: Sequence[str]) -> bytes:
    """Label probabilities over time, stacked, from one sample's binned summary (`per_second`).

    Bins without a main face (no face found, or no frame decoded) are left blank and shaded
    grey, so gaps show; binned, an hour of video stays as readable as a short clip.
    """
    starts = summary["start"].to_numpy(dtype=float)
    width = float(np.median(np.diff(starts))) if len(starts) > 1 else 1.0
    probs = summary[[f"p_{label}" for label in labels]].to_numpy(dtype=float)
    gap = np.isnan(probs).all(axis=1)
    figure = _figure(7.0, 2.6)
    axes = figure.subplots()
    edges = np.r_[starts, starts[-1] + width] if len(starts) else np.zeros(1)
    bottom = np.zeros(len(starts))
    for j, label in enumerate(labels):
        values = np.nan_to_num(probs[:, j])
        axes.stairs(bottom + values, edges, baseline=bottom, fill=True, label=_plain(str(label)))
        bottom = bottom + values
    flags = np.r_[0, gap.astype(np.int8), 0]
    changes = np.flatnonzero(np.diff(flags))
    for first, past in zip(changes[::2], changes[1::2], strict=True):
        axes.axvspan(edges[first], edges[past], color=_GOLD_COLOR, alpha=0.35, linewidth=0)
    minutes = len(edges) and edges[-1] > 300
    if minutes:
        axes.xaxis.set_major_formatter(lambda value, _: f"{int(value // 60)}:{int(value % 60):02d}")
    axes.set_xlabel("time (min:s)" if minutes else "time (s)")
    axes.set_ylabel("probability")
    axes.set_ylim(0, 1.0)
    axes.set_xlim(edges[0], edges[-1])
    title = f"Emotion timeline: {_plain(sample_id)}"
    if gap.any():
        title += " (grey: no face or no frame)"
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(figure)


def labelled_scatter_png(
    labels: Sequence[str],
    x: Sequence[float],
    y: Sequence[float],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    log_x: bool = False,
    highlight: str | None = None,
) -> bytes:
    """One labelled point per class (the `highlight` label in red), e.g. F1 vs word frequency."""
    x_values, y_values = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    colors = [_SINK_COLOR if label == highlight else _PRED_COLOR for label in labels]
    figure = _figure(6.0, 4.0)
    axes = figure.subplots()
    axes.scatter(x_values, y_values, color=colors)
    for label, xi, yi in zip(labels, x_values, y_values, strict=True):
        axes.annotate(
            _plain(label), (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=8
        )
    if log_x:
        axes.set_xscale("log")
    axes.set_xlabel(_plain(xlabel))
    axes.set_ylabel(_plain(ylabel))
    axes.set_ylim(-0.03, 1.03)
    axes.set_title(_plain(title), fontsize=10)
    return _png(figure)


def grouped_shares_png(
    labels: Sequence[str],
    groups: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str = "share of samples",
) -> bytes:
    """Side-by-side bars per label, one bar per named group (e.g. gold, before, after)."""
    positions = np.arange(len(labels))
    width = 0.8 / max(len(groups), 1)
    palette = (_GOLD_COLOR, _PRED_COLOR, _SINK_COLOR, "#4e9a06", "#c4a000")
    figure = _figure(max(6.0, 0.6 * len(labels) + 2.0), 4.0)
    axes = figure.subplots()
    for i, (name, values) in enumerate(groups.items()):
        offset = (i - (len(groups) - 1) / 2) * width
        color = palette[i % len(palette)]
        axes.bar(positions + offset, values, width=width, color=color, label=_plain(name))
    axes.set_xticks(positions, [_plain(lab) for lab in labels], rotation=45, ha="right", fontsize=8)
    axes.set_ylabel(ylabel)
    axes.set_title(_plain(title))
    axes.legend(fontsize=8)
    return _png(figure)


def sweep_png(summary: Mapping) -> bytes:
    """Each metric per sweep setting with its interval: lines over a numeric axis, else bars."""
    settings = summary["settings"]
    metrics = summary["metrics"]
    values = [s["value"] for s in settings]
    numeric = all(isinstance(v, int | float) for v in values)
    positions = np.asarray(values, dtype=float) if numeric else np.arange(len(settings))
    width = 0.8 / max(len(metrics), 1)
    figure = _figure(max(6.0, 0.9 * len(settings) + 2.5), 4.0)
    axes = figure.subplots()
    for i, metric in enumerate(metrics):
        points = np.array([s["metrics"][metric] for s in settings])
        bounds = [s["ci"].get(metric) or (p, p) for s, p in zip(settings, points, strict=True)]
        errors = np.abs(np.array(bounds, dtype=float).T - points)
        if numeric:
            axes.errorbar(positions, points, yerr=errors, marker="o", capsize=3, label=metric)
        else:
            offset = (i - (len(metrics) - 1) / 2) * width
            axes.bar(positions + offset, points, width=width, yerr=errors, capsize=3, label=metric)
    if not numeric:
        names = [_plain(str(s["name"])) for s in settings]
        axes.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
    axes.set_xlabel(_plain(str(summary["axis"])))
    axes.set_ylabel("score")
    axes.set_ylim(0.0, 1.02)
    axes.set_title(_plain(f"Sweep: {summary['experiment']} (n = {summary['n']})"), fontsize=10)
    axes.legend(fontsize=8)
    return _png(figure)


def curves_png(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> bytes:
    """One line per named series of (x, y) points, e.g. this run's and a paper's macro F1 vs fps."""
    figure = _figure(6.0, 4.0)
    axes = figure.subplots()
    for name, (x, y) in series.items():
        axes.plot(
            np.asarray(x, dtype=float), np.asarray(y, dtype=float), marker="o", label=_plain(name)
        )
    axes.set_xlabel(_plain(xlabel))
    axes.set_ylabel(_plain(ylabel))
    axes.set_ylim(0.0, 1.02)
    axes.set_title(_plain(title), fontsize=10)
    axes.legend(fontsize=8)
    return _png(figure)
