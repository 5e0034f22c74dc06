"""The Scorer: gold labels + predictions → one JSON-able metrics dict, from Python or a file."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from emovlm.errors import InputError
from emovlm.eval.columns import ScoreColumns
from emovlm.eval.vad import Vad
from emovlm.labels import MATCH_MODES, LabelSpace, get_label_space
from emovlm.types import Prediction, Status

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
    get "vad": mean absolute error per dimension (see `emovlm.eval.vad`). The same as filling
    `ScoreColumns` chunk by chunk (how a run's stored rows are scored).
    """
    if len(gold) != len(predictions):
        raise InputError(
            f"{len(gold)} gold entries but {len(predictions)} predictions; "
            "pass one gold label set per prediction, in the same order"
        )
    columns = ScoreColumns(label_space, len(predictions), multi_label=multi_label)
    columns.add(gold, predictions, gold_vad)
    return columns.score(n_bootstrap, seed)


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
    review: Callable[[list[Prediction]], list[Prediction]] | None = None,
) -> tuple[dict, list[Prediction], list[tuple[str, ...]]]:
    """Read a CSV or JSONL of gold labels and answers, parse the answers and score them.

    A prediction cell may be free text or a ranked comma-separated list (first = top-1); gold cells
    are label names or synonyms (multi-label: separated by , ; or |). Without `id_column`, a column
    named id, sample_id or name gives the sample ids, else the row number does. `review` (e.g. an
    answer judge's) may re-read the parsed predictions before they are scored.
    Returns (metrics, predictions, gold label tuples).
    """
    path = Path(path)
    space = get_label_space(label_set)
    if match not in MATCH_MODES:
        raise InputError(f"unknown match mode {match!r}; use one of: {', '.join(MATCH_MODES)}")
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
    if review is not None:
        predictions = review(predictions)
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
        extra={"parse": parsed.to_json()},
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
