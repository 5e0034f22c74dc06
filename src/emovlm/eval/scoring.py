"""The Scorer: gold labels + predictions → one JSON-able metrics dict, from Python or a file."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emovlm.errors import InputError
from emovlm.eval.bootstrap import bootstrap_code_counts, bootstrap_sums, percentile_intervals
from emovlm.eval.diagnostics import (
    collapse_diagnostics,
    group_recall,
    head_tail_split,
    kl_divergence,
)
from emovlm.eval.metrics import (
    EXTRA_COLUMNS,
    confusion_matrix,
    single_label_scores,
    top_k_accuracy,
)
from emovlm.eval.multilabel import (
    average_precision_per_class,
    multilabel_scores,
    sample_statistics,
)
from emovlm.eval.vad import Vad, vad_errors
from emovlm.labels import LabelSpace, get_label_space
from emovlm.types import Prediction, Status

CI_LEVEL = 0.95
MAP_DEFINITION = (
    "map: step-wise AP as sklearn.metrics.average_precision_score (sum over distinct score "
    "thresholds of recall gain x precision), mean over all categories; map_emotic: the EMOTIC "
    "authors' 11-point interpolated AP (mean over recall levels 0, 0.1, ..., 1 of the highest "
    "precision at recall >= level), mean over all categories; a category without gold positives "
    "has AP 0; missing scores count as 0"
)
_CI_METRICS = (
    "uar",
    "war",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "out_of_set_rate",
    "unparsed_rate",
    "failed_rate",
)
_MULTI_CI_METRICS = ("hamming", "subset_accuracy", "jaccard")
_STATUS_COLUMN = {Status.OUT_OF_SET: 0, Status.UNPARSED: 1, Status.FAILED: 2}
_GOLD_SEPARATORS = re.compile(r"[,;|]")
_ID_COLUMNS = ("id", "sample_id", "name")


def score_predictions(
    gold: Sequence[Sequence[str]],
    predictions: Sequence[Prediction],
    label_space: LabelSpace,
    *,
    multi_label: bool | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    gold_vad: Sequence[Vad | None] | None = None,
) -> dict:
    """Score predictions against gold labels: metrics, diagnostics and bootstrap intervals.

    `predictions[i]` pairs with `gold[i]`; out-of-set, unparsed and failed answers count as wrong.
    `multi_label=None` follows `label_space.multi_label`. With `gold_vad` (valence, arousal,
    dominance per sample, None when unknown) and predictions carrying `extra["vad"]`, the metrics
    get "vad": mean absolute error per dimension (see `emovlm.eval.vad`).
    """
    if len(gold) != len(predictions):
        raise InputError(
            f"{len(gold)} gold entries but {len(predictions)} predictions; "
            "pass one gold label set per prediction, in the same order"
        )
    if not predictions:
        raise InputError("nothing to score: no predictions were given")
    if n_bootstrap < 0:
        raise InputError(f"n_bootstrap must be 0 or more, not {n_bootstrap}")
    multi = label_space.multi_label if multi_label is None else multi_label
    gold_sets = [
        gold_indices(g, p.sample_id, label_space, multi)
        for g, p in zip(gold, predictions, strict=True)
    ]
    scorer = _score_multi_label if multi else _score_single_label
    metrics = scorer(gold_sets, predictions, label_space, n_bootstrap, seed)
    metrics.setdefault("ci", {})
    metrics.update(ci_level=CI_LEVEL, n_bootstrap=n_bootstrap, seed=seed)
    if gold_vad is not None and any(p.extra.get("vad") for p in predictions):
        metrics["vad"] = vad_errors(gold_vad, [p.extra.get("vad") for p in predictions])
    return metrics


def gold_indices(
    gold: Sequence[str] | str, sample_id: str, space: LabelSpace, multi: bool
) -> tuple[int, ...]:
    """Label indices of one sample's gold cell, with a clear error for unknown or extra labels."""
    names = (gold,) if isinstance(gold, str) else tuple(gold)
    indices = []
    for name in names:
        label = space.normalize(str(name))
        if label is None:
            raise InputError(
                f"sample {sample_id}: gold label {name!r} is not in label set {space.name!r}; "
                f"valid labels: {', '.join(space.labels)}"
            )
        indices.append(space.index(label))
    if not indices:
        raise InputError(f"sample {sample_id}: no gold label; every sample needs at least one")
    if not multi and len(set(indices)) > 1:
        raise InputError(
            f"sample {sample_id}: {len(indices)} gold labels ({', '.join(names)}) but single-label "
            "scoring takes one; score with multi_label=True (CLI: --multi-label)"
        )
    return tuple(dict.fromkeys(indices))


def answer_code(prediction: Prediction, space: LabelSpace) -> int:
    """Top-1 as a confusion column: a label index, or K + extra column (status is authoritative)."""
    k, status = len(space), Status(prediction.status)
    if status is Status.OK:
        top = prediction.top
        if top in space:
            return space.index(top)
        return k + _STATUS_COLUMN[Status.UNPARSED if top is None else Status.OUT_OF_SET]
    return k + _STATUS_COLUMN[status]


def _gold_rank(prediction: Prediction, gold_label: str, top_correct: bool) -> int:
    """1-based position of the gold label in the ranked answers (top-1 judged by status), or 0."""
    if top_correct:
        return 1
    if Status(prediction.status) is Status.FAILED:
        return 0
    for position, answer in enumerate(prediction.labels[1:], start=2):
        if answer == gold_label:
            return position
    return 0


def _out_of_set_answers(predictions: Sequence[Prediction], space: LabelSpace, multi: bool) -> dict:
    """Answer text → count of answers outside the label space (top-1 only when single-label)."""
    counts: Counter[str] = Counter()
    for p in predictions:
        status = Status(p.status)
        if status is Status.OUT_OF_SET and not multi:
            counts[p.top if p.top is not None else p.raw.strip()[:60]] += 1
        elif multi and status not in (Status.FAILED, Status.UNPARSED):
            counts.update(a for a in p.labels if a not in space)
    return dict(counts.most_common())


def _score_single_label(
    gold_sets: list[tuple[int, ...]],
    predictions: Sequence[Prediction],
    space: LabelSpace,
    n_bootstrap: int,
    seed: int,
) -> dict:
    k, labels = len(space), list(space.labels)
    gold = np.array([g[0] for g in gold_sets])
    answers = np.array([answer_code(p, space) for p in predictions])
    confusion = confusion_matrix(gold, answers, k)
    scores = single_label_scores(confusion)
    ranks = [
        _gold_rank(p, labels[g], a == g) for p, g, a in zip(predictions, gold, answers, strict=True)
    ]
    longest = min(max(len(p.labels) for p in predictions), k)
    head, tail = head_tail_split(scores["support"])

    metrics = _headline(space, len(predictions), scores, multi=False)
    metrics["confusion"] = _confusion_json(labels, confusion)
    metrics["topk"] = {
        str(i): v for i, v in top_k_accuracy(np.array(ranks), max(longest, 1)).items()
    }
    metrics.update(
        collapse_diagnostics(
            labels,
            scores["predicted"],
            scores["support"],
            scores["recall"],
            scores["predicted"] - np.diagonal(confusion[:, :k]),
            confusion[:, :k],
            len(predictions),
        )
    )
    metrics["out_of_set_answers"] = _out_of_set_answers(predictions, space, multi=False)
    if n_bootstrap:
        n_columns = k + len(EXTRA_COLUMNS)
        counts = bootstrap_code_counts(gold * n_columns + answers, k * n_columns, n_bootstrap, seed)
        resampled = single_label_scores(counts.reshape(-1, k, n_columns))
        _add_intervals(metrics, resampled, _CI_METRICS, head, tail)
    return metrics


def _score_multi_label(
    gold_sets: list[tuple[int, ...]],
    predictions: Sequence[Prediction],
    space: LabelSpace,
    n_bootstrap: int,
    seed: int,
) -> dict:
    k, labels, n = len(space), list(space.labels), len(predictions)
    gold = np.zeros((n, k), dtype=bool)
    answered = np.zeros((n, k), dtype=bool)
    status = np.zeros((n, len(EXTRA_COLUMNS)), dtype=int)
    for i, (g, p) in enumerate(zip(gold_sets, predictions, strict=True)):
        gold[i, list(g)] = True
        outcome = Status(p.status)
        if outcome in _STATUS_COLUMN:
            status[i, _STATUS_COLUMN[outcome]] = 1
        if outcome not in (Status.FAILED, Status.UNPARSED):
            answered[i, [space.index(a) for a in p.labels if a in space]] = True
    rows = sample_statistics(gold, answered)
    scores = multilabel_scores(rows.sum(axis=0), k, n)
    for i, column in enumerate(EXTRA_COLUMNS):
        scores[f"{column}_rate"] = status[:, i].mean()
    head, tail = head_tail_split(scores["support"])
    cross = gold.T.astype(int) @ answered.astype(int)

    metrics = _headline(space, n, scores, multi=True)
    for name in _MULTI_CI_METRICS:
        metrics[name] = float(scores[name])
    metrics["confusion"] = _confusion_json(labels, np.hstack([cross, gold.T.astype(int) @ status]))
    metrics.update(
        collapse_diagnostics(
            labels,
            scores["predicted"],
            scores["support"],
            scores["recall"],
            scores["false_positives"],
            cross,
            n,
        )
    )
    metrics["out_of_set_answers"] = _out_of_set_answers(predictions, space, multi=True)
    metrics["map_definition"] = MAP_DEFINITION
    if any(p.scores for p in predictions):
        _add_average_precision(metrics, gold, predictions, labels)
    if n_bootstrap:
        sums = bootstrap_sums(np.hstack([rows, status]), n_bootstrap, seed)
        resampled = multilabel_scores(sums[:, : rows.shape[1]], k, n)
        for i, column in enumerate(EXTRA_COLUMNS):
            resampled[f"{column}_rate"] = sums[:, rows.shape[1] + i] / n
        _add_intervals(metrics, resampled, _CI_METRICS + _MULTI_CI_METRICS, head, tail)
    return metrics


def _headline(space: LabelSpace, n: int, scores: Mapping[str, Any], *, multi: bool) -> dict:
    """The headline numbers and per-class table shared by single- and multi-label scoring."""
    per_class = {
        label: {
            "precision": float(scores["precision"][i]),
            "recall": float(scores["recall"][i]),
            "f1": float(scores["f1"][i]),
            "support": int(scores["support"][i]),
        }
        for i, label in enumerate(space.labels)
    }
    return {
        "n": n,
        "label_set": space.name,
        "labels": list(space.labels),
        "multi_label": multi,
        **{name: float(scores[name]) for name in _CI_METRICS},
        "per_class": per_class,
        "classes_without_support": [
            label for i, label in enumerate(space.labels) if scores["support"][i] == 0
        ],
    }


def _confusion_json(labels: list[str], matrix: np.ndarray) -> dict:
    return {
        "rows": labels,
        "columns": labels + list(EXTRA_COLUMNS),
        "matrix": matrix.astype(int).tolist(),
    }


def _add_intervals(
    metrics: dict,
    resampled: Mapping[str, np.ndarray],
    names: Sequence[str],
    head: np.ndarray,
    tail: np.ndarray,
) -> None:
    """Percentile intervals of the headline metrics, diagnostics and per-class recall/F1."""
    values = {name: resampled[name] for name in names}
    values["kl_pred_gold"] = kl_divergence(resampled["predicted"], resampled["support"])
    values["head_recall"] = group_recall(resampled["recall"], head)
    values["tail_recall"] = group_recall(resampled["recall"], tail)
    metrics["ci"] = percentile_intervals(values, CI_LEVEL)
    for i, label in enumerate(metrics["labels"]):
        per_class = percentile_intervals(
            {"recall": resampled["recall"][:, i], "f1": resampled["f1"][:, i]}, CI_LEVEL
        )
        metrics["per_class"][label].update(recall_ci=per_class["recall"], f1_ci=per_class["f1"])


def _add_average_precision(
    metrics: dict, gold: np.ndarray, predictions: Sequence[Prediction], labels: list[str]
) -> None:
    scores = np.array(
        [[float((p.scores or {}).get(lab, 0.0)) for lab in labels] for p in predictions]
    )
    for key, definition in (("map", "sklearn"), ("map_emotic", "emotic")):
        per_class = average_precision_per_class(gold, scores, definition=definition)
        metrics[key] = float(per_class.mean())
        for label, ap in zip(labels, per_class, strict=True):
            metrics["per_class"][label]["ap" if definition == "sklearn" else "ap_emotic"] = float(
                ap
            )


def score_file(
    path: Path,
    label_set: str,
    *,
    gt_column: str = "gt",
    pred_column: str = "pred",
    id_column: str | None = None,
    multi_label: bool = False,
    match: str = "word",
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[dict, list[Prediction], list[tuple[str, ...]]]:
    """Read a CSV or JSONL of gold labels and answers, parse the answers and score them.

    A prediction cell may be free text or a ranked comma-separated list (first = top-1); gold cells
    are label names or synonyms (multi-label: separated by , ; or |). Without `id_column`, a column
    named id, sample_id or name gives the sample ids, else the row number does.
    Returns (metrics, predictions, gold label tuples).
    """
    path = Path(path)
    space = get_label_space(label_set)
    if match not in ("word", "contains"):
        raise InputError(f"unknown match mode {match!r}; use 'word' or 'contains'")
    records = list(_read_records(path))
    if not records:
        raise InputError(f"{path}: no rows to score; the file is empty or has only a header")
    columns = list(records[0][1])
    wanted = {"gold": gt_column, "prediction": pred_column}
    if id_column is not None:
        wanted["id"] = id_column
    for role, column in wanted.items():
        if column not in columns:
            flag = {"gold": "--gt-column", "prediction": "--pred-column", "id": "--id-column"}[role]
            raise InputError(
                f"{path}: no {role} column {column!r}; available columns: {', '.join(columns)}; "
                f"pass the right one with {flag}"
            )
    ids = id_column or next((c for c in _ID_COLUMNS if c in columns), None)
    predictions: list[Prediction] = []
    gold: list[tuple[str, ...]] = []
    for where, record in records:
        missing = [c for c in wanted.values() if c not in record]
        if missing:
            raise InputError(f"{path}: {where} has no {missing[0]!r} field; give every row one")
        sample_id = str(record[ids]) if ids and record.get(ids) is not None else where
        gold.append(_read_gold(record[gt_column], space, multi_label, path, where))
        predictions.append(
            _read_prediction(record, pred_column, sample_id, space, match, path, where)
        )
    metrics = score_predictions(
        gold, predictions, space, multi_label=multi_label, n_bootstrap=n_bootstrap, seed=seed
    )
    metrics["source"] = str(path)
    return metrics, predictions, gold


def _read_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for each row of a CSV/TSV or JSONL file; `where` names the row for errors."""
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path to the predictions file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        yield from _read_delimited(path, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".ndjson"):
        yield from _read_jsonl(path)
    else:
        raise InputError(
            f"{path}: cannot read {suffix or 'a file without extension'}; "
            "give a .csv, .tsv or .jsonl file (one row per sample)"
        )


def _read_delimited(path: Path, delimiter: str) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = reader.fieldnames or []
        for number, row in enumerate(reader, start=1):
            where = f"row {number} (line {reader.line_num})"
            if None in row or any(value is None for value in row.values()):
                given = sum(v is not None for k, v in row.items() if k is not None)
                fields = given + len(row.get(None) or [])
                raise InputError(
                    f"{path}: {where} has {fields} fields but the header has {len(header)}; "
                    "fix the row, and quote cells that contain the delimiter"
                )
            yield where, row


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{path}: {where} is not valid JSON ({exc.msg}); write one JSON object per line"
                ) from exc
            if not isinstance(record, dict):
                raise InputError(
                    f"{path}: {where} is a JSON {type(record).__name__}, not an object; write one "
                    'object per line, e.g. {"id": "1", "gt": "happy", "pred": "happy"}'
                )
            yield where, record


def _read_gold(
    value: Any, space: LabelSpace, multi: bool, path: Path, where: str
) -> tuple[str, ...]:
    parts = value if isinstance(value, list) else _GOLD_SEPARATORS.split(str(value or ""))
    names = [str(part).strip() for part in parts if str(part).strip()]
    if not names:
        raise InputError(f"{path}: {where} has an empty gold label; fill it or drop the row")
    if not multi and len(names) > 1:
        raise InputError(
            f"{path}: {where} has {len(names)} gold labels ({', '.join(names)}); "
            "single-label scoring takes one, or pass --multi-label"
        )
    labels = []
    for name in names:
        label = space.normalize(name)
        if label is None:
            raise InputError(
                f"{path}: {where}: gold label {name!r} is not in label set {space.name!r}; "
                f"valid labels: {', '.join(space.labels)}; fix the gold column or pick the "
                "matching --label-set"
            )
        labels.append(label)
    return tuple(dict.fromkeys(labels))


def _read_prediction(
    record: Mapping[str, Any],
    column: str,
    sample_id: str,
    space: LabelSpace,
    match: str,
    path: Path,
    where: str,
) -> Prediction:
    value = record[column]
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value or "")
    if str(record.get("status", "")).strip().lower() == Status.FAILED:
        return Prediction.failed(sample_id, str(record.get("reason") or "failed"))
    parsed = space.parse(text, match=match)
    return Prediction(
        sample_id=sample_id,
        labels=parsed.labels,
        scores=_read_scores(record.get("scores"), space, path, where),
        raw=text,
        status=parsed.status,
    )


def _read_scores(value: Any, space: LabelSpace, path: Path, where: str) -> dict[str, float] | None:
    """Optional per-label scores of a JSONL row ({"label": probability, ...})."""
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise InputError(f'{path}: {where}: "scores" must be an object of label → number')
    scores = {}
    for name, score in value.items():
        label = space.normalize(str(name))
        if label is None or not isinstance(score, int | float):
            raise InputError(
                f"{path}: {where}: bad score entry {name!r}: {score!r}; keys must be labels of "
                f"{space.name!r} ({', '.join(space.labels)}) and values numbers"
            )
        scores[label] = float(score)
    return scores
