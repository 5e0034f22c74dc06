"""Run-to-run comparison on shared samples: paired bootstrap per class, and changed samples."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from emovlm.errors import InputError
from emovlm.eval.bootstrap import bootstrap_code_counts, percentile_intervals
from emovlm.eval.compare import paired_comparison
from emovlm.eval.metrics import EXTRA_COLUMNS, single_label_scores
from emovlm.labels import LabelSpace
from emovlm.types import Prediction, Status
from emovlm.view.runs import MAX_PAGE_SIZE, PAGE_SIZE, RAW_PREVIEW, Run, answer_sql, reading

CHANGES = ("fixed", "broken", "changed")
"""Kinds of sample lists: wrong → right, right → wrong, any change of the top answer."""

N_BOOTSTRAP = 1000
SEED = 0


def check_comparable(reference: Run, other: Run) -> None:
    """Refuse runs that cannot be compared sample by sample, naming both."""
    if reference.label_space.name != other.label_space.name:
        raise InputError(
            f"{reference.name} uses label set {reference.label_space.name} but {other.name} uses "
            f"{other.label_space.name}; compare runs of the same dataset"
        )
    if reference.label_space.multi_label:
        raise InputError(
            f"sample-by-sample comparison scores single-label runs; {reference.label_space.name} "
            "is multi-label"
        )


def _pairs(reference: Run, other: Run) -> list[tuple[str, str, str, str, str, str]]:
    """(sample_id, gold, ref labels, ref status, other labels, other status) of shared samples."""
    with reading(reference) as conn:
        conn.execute("ATTACH DATABASE ? AS other", (f"file:{other.store}?mode=ro",))
        return conn.execute(
            "SELECT a.sample_id, a.gold, a.labels, a.status, b.labels, b.status "
            "FROM main.predictions a JOIN other.predictions b "
            "ON b.config_key = ? AND b.sample_id = a.sample_id "
            "WHERE a.config_key = ? ORDER BY a.seq",
            (other.key, reference.key),
        ).fetchall()


def compare_runs(reference: Run, other: Run) -> dict[str, Any]:
    """Headline and per-class paired differences (other − reference) with bootstrap intervals."""
    check_comparable(reference, other)
    space = reference.label_space
    pairs = _pairs(reference, other)
    if not pairs:
        raise InputError(f"{reference.name} and {other.name} share no sample")
    gold = [tuple(json.loads(g)) for _, g, *_ in pairs]
    sides = {
        "reference": [
            Prediction(sample_id=s, labels=tuple(json.loads(la)), status=Status(st))
            for s, _, la, st, _, _ in pairs
        ],
        "other": [
            Prediction(sample_id=s, labels=tuple(json.loads(lb)), status=Status(st))
            for s, _, _, _, lb, st in pairs
        ],
    }
    headline = paired_comparison(
        {name: (preds, gold) for name, preds in sides.items()},
        space,
        "reference",
        n_bootstrap=N_BOOTSTRAP,
        seed=SEED,
    )
    k = len(space)
    n_columns = k + len(EXTRA_COLUMNS)
    columns = [*space.labels, *EXTRA_COLUMNS]
    gold_idx = np.array([space.index(g[0]) for g in gold])
    point, drawn, answered = {}, {}, {}
    for name, predictions in sides.items():
        answered[name] = [_column(p, space) for p in predictions]
        answers = np.array([columns.index(c) for c in answered[name]])
        codes = gold_idx * n_columns + answers
        counts = np.bincount(codes, minlength=k * n_columns).reshape(1, k, n_columns)
        point[name] = single_label_scores(counts)
        resampled = bootstrap_code_counts(codes, k * n_columns, N_BOOTSTRAP, SEED)
        drawn[name] = single_label_scores(resampled.reshape(-1, k, n_columns))
    per_class = []
    for i, label in enumerate(space.labels):
        row: dict[str, Any] = {"label": label, "support": int(point["reference"]["support"][0][i])}
        for metric in ("recall", "f1"):
            ref, oth = point["reference"][metric][0][i], point["other"][metric][0][i]
            diff = drawn["other"][metric][:, i] - drawn["reference"][metric][:, i]
            row[metric] = {
                "reference": float(ref),
                "other": float(oth),
                "diff": float(oth - ref),
                "ci": percentile_intervals({"d": diff}, headline["ci_level"]).get("d"),
            }
        per_class.append(row)
    counts = {kind: 0 for kind in CHANGES}
    for g, a, b in zip(gold, answered["reference"], answered["other"], strict=True):
        counts["fixed"] += a != g[0] and b == g[0]
        counts["broken"] += a == g[0] and b != g[0]
        counts["changed"] += a != b
    return {
        "reference": reference.describe(),
        "other": other.describe(),
        "n": len(pairs),
        "headline": headline,
        "per_class": per_class,
        "changes": counts,
    }


def _column(prediction: Prediction, space: LabelSpace) -> str:
    """The confusion column of a prediction (a label, or out_of_set / unparsed / failed)."""
    if prediction.status is not Status.OK:
        return prediction.status.value
    top = prediction.top
    if top is None:
        return "unparsed"
    return top if top in space else "out_of_set"


def changed_samples(
    reference: Run, other: Run, kind: str, offset: int = 0, limit: int = PAGE_SIZE
) -> dict[str, Any]:
    """One page of the shared samples that `kind` (fixed, broken, changed) picks, in run order."""
    check_comparable(reference, other)
    if kind not in CHANGES:
        raise InputError(f"kind {kind!r} is not one of {', '.join(CHANGES)}")
    if offset < 0 or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InputError(f"offset must be ≥ 0 and limit 1–{MAX_PAGE_SIZE} (got {offset}, {limit})")
    space = reference.label_space
    a_sql, a_params = answer_sql(space, "a")
    b_sql, b_params = answer_sql(space, "b")
    condition = {
        "fixed": "ans_a != gold0 AND ans_b = gold0",
        "broken": "ans_a = gold0 AND ans_b != gold0",
        "changed": "ans_a != ans_b",
    }[kind]
    inner = (
        f"SELECT a.seq AS seq, a.sample_id AS sample_id, a.gold AS gold, "
        f"json_extract(a.gold, '$[0]') AS gold0, {a_sql} AS ans_a, {b_sql} AS ans_b, "
        f"substr(a.raw, 1, {RAW_PREVIEW}) AS raw_a, substr(b.raw, 1, {RAW_PREVIEW}) AS raw_b "
        "FROM main.predictions a JOIN other.predictions b "
        "ON b.config_key = ? AND b.sample_id = a.sample_id WHERE a.config_key = ?"
    )
    params = [*a_params, *b_params, other.key, reference.key]
    with reading(reference) as conn:
        conn.execute("ATTACH DATABASE ? AS other", (f"file:{other.store}?mode=ro",))
        (total,) = conn.execute(
            f"SELECT COUNT(*) FROM ({inner}) WHERE {condition}", params
        ).fetchone()
        rows = conn.execute(
            f"SELECT sample_id, gold, ans_a, ans_b, raw_a, raw_b FROM ({inner}) "
            f"WHERE {condition} ORDER BY seq LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
    return {
        "kind": kind,
        "total": total,
        "offset": offset,
        "limit": limit,
        "rows": [
            {
                "sample_id": s,
                "gold": json.loads(g),
                "reference": {"answer": a, "raw": ra},
                "other": {"answer": b, "raw": rb},
            }
            for s, g, a, b, ra, rb in rows
        ],
    }
