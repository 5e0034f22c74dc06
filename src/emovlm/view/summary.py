"""A run's metrics for the explorer: its metrics.json, or scored from the store when absent."""

from __future__ import annotations

import json
from typing import Any

from emovlm.eval.scoring import score_predictions
from emovlm.types import Prediction, Status
from emovlm.view.runs import Run, read_metrics, reading

SCORED_BOOTSTRAP = 200
"""Bootstrap resamples used when a run has no metrics.json and is scored on opening."""


def run_summary(run: Run) -> dict[str, Any]:
    """The run's description, metrics (with intervals, per class, diagnostics) and status counts."""
    metrics = read_metrics(run.folder, run.key)
    source = "metrics.json"
    if metrics is None or metrics.get("labels") != list(run.label_space.labels):
        metrics = _score_store(run)
        source = f"scored from store.sqlite ({SCORED_BOOTSTRAP} bootstrap resamples)"
    with reading(run) as conn:
        counts = dict(
            conn.execute(
                "SELECT status, COUNT(*) FROM predictions WHERE config_key = ? GROUP BY status",
                (run.key,),
            ).fetchall()
        )
    return {
        "run": run.describe(),
        "metrics": metrics,
        "metrics_source": source,
        "status_counts": {s.value: counts.get(s.value, 0) for s in Status},
    }


def _score_store(run: Run) -> dict[str, Any]:
    """Score the run's stored answers (top answers and statuses only) with emovlm's scorer."""
    with reading(run) as conn:
        rows = conn.execute(
            "SELECT sample_id, gold, labels, status FROM predictions "
            "WHERE config_key = ? ORDER BY seq",
            (run.key,),
        ).fetchall()
    predictions = [
        Prediction(sample_id=s, labels=tuple(json.loads(labels)), status=Status(status))
        for s, _, labels, status in rows
    ]
    gold = [tuple(json.loads(g)) for _, g, _, _ in rows]
    return score_predictions(gold, predictions, run.label_space, n_bootstrap=SCORED_BOOTSTRAP)
