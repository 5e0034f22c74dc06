"""A run's compact in-memory index (one small entry per sample) for fast filtering and paging.

Built once per run with one read of the store; a request then filters with array masks and
reads only the rows of the page it shows. Text in the raw answer is searched in SQL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from emovlm.errors import InputError
from emovlm.labels import LabelSpace
from emovlm.types import Status
from emovlm.view.runs import RAW_PREVIEW, Run, answer_columns, answer_sql, reading

PAGE_SIZE = 50
"""Samples per page unless the request asks for another count."""

MAX_PAGE_SIZE = 500
"""The most samples one page may hold."""

FILTERS = ("gold", "pred", "status", "oos", "q")
"""Query parameters a sample list can be filtered by."""

_IDS_PER_QUERY = 500
_NO_ANSWER = (Status.FAILED.value, Status.UNPARSED.value)


@dataclass(frozen=True, eq=False)
class RunIndex:
    """Per sample, in run order: seq, id, gold labels, answers, status and top answer."""

    run: Run
    seq: np.ndarray
    ids: np.ndarray
    gold: np.ndarray
    answered: np.ndarray
    column: np.ndarray
    status: np.ndarray
    top: np.ndarray

    @classmethod
    def build(cls, run: Run) -> RunIndex:
        """Read the run's rows once (ids, gold, answers, status) into arrays."""
        space = run.label_space
        multi = space.multi_label
        gold_sql, labels_sql = (
            ("gold", "labels")
            if multi
            else ("json_extract(gold, '$[0]')", "json_extract(labels, '$[0]')")
        )
        with reading(run) as conn:
            rows = conn.execute(
                f"SELECT seq, sample_id, {gold_sql}, {labels_sql}, status FROM predictions "
                "WHERE config_key = ? ORDER BY seq",
                (run.key,),
            ).fetchall()
        n, k = len(rows), len(space)
        position = {label: i for i, label in enumerate(space.labels)}
        status = np.array([r[4] for r in rows], dtype=object)
        gold = np.zeros((n, k), dtype=bool)
        answered = np.zeros((n, k), dtype=bool)
        if multi:
            top = []
            for i, (_, _, gold_json, labels_json, row_status) in enumerate(rows):
                gold[i, [position[g] for g in json.loads(gold_json) if g in position]] = True
                labels = json.loads(labels_json)
                top.append(labels[0] if labels else "")
                if row_status not in _NO_ANSWER:
                    answered[i, [position[a] for a in labels if a in position]] = True
            top_array = np.array(top, dtype=object)
        else:
            gold_index = np.array([position.get(r[2], -1) for r in rows], dtype=np.int64)
            gold[np.flatnonzero(gold_index >= 0), gold_index[gold_index >= 0]] = True
            top_array = np.array([r[3] or "" for r in rows], dtype=object)
        column = _columns(space, status, top_array)
        if not multi:
            labelled = np.flatnonzero(column < k)
            answered[labelled, column[labelled]] = True
        return cls(
            run=run,
            seq=np.array([r[0] for r in rows], dtype=np.int64),
            ids=np.array([r[1] for r in rows], dtype=object),
            gold=gold,
            answered=answered,
            column=column,
            status=status,
            top=top_array,
        )

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.seq)

    def mask(self, filters: Mapping[str, str]) -> np.ndarray:
        """Which samples pass `filters` (gold, pred, status, oos, q; empty ones are ignored)."""
        space = self.run.label_space
        keep = np.ones(len(self), dtype=bool)
        gold = filters.get("gold")
        if gold:
            keep &= self.gold[:, space.index(gold)] if gold in space else False
        pred = filters.get("pred")
        if pred:
            columns = answer_columns(space)
            if pred not in columns:
                raise InputError(f"prediction {pred!r} is not one of {', '.join(columns)}")
            if not space.multi_label:
                keep &= self.column == columns.index(pred)
            elif pred in space:
                keep &= self.answered[:, space.index(pred)]
            else:
                keep &= self.status == pred
        status = filters.get("status")
        if status:
            if status not in {s.value for s in Status}:
                raise InputError(
                    f"status {status!r} is not one of {', '.join(s.value for s in Status)}"
                )
            keep &= self.status == status
        word = filters.get("oos")
        if word:
            keep &= self._answered_word(word)
        text = filters.get("q")
        if text:
            keep &= np.isin(self.seq, self._seqs_with_text(text))
        return keep

    def _answered_word(self, word: str) -> np.ndarray:
        """Samples whose top answer is the out-of-set `word` (any answer when multi-label)."""
        if not self.run.label_space.multi_label:
            return (self.status == Status.OUT_OF_SET.value) & (self.top == word)
        with reading(self.run) as conn:
            rows = conn.execute(
                "SELECT seq FROM predictions WHERE config_key = ? AND "
                "EXISTS (SELECT 1 FROM json_each(labels) WHERE value = ?)",
                (self.run.key, word),
            ).fetchall()
        return np.isin(self.seq, np.array([s for (s,) in rows], dtype=np.int64))

    def _seqs_with_text(self, text: str) -> np.ndarray:
        """Seqs of the rows whose raw answer contains `text` (case-insensitive for ASCII)."""
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with reading(self.run) as conn:
            rows = conn.execute(
                "SELECT seq FROM predictions WHERE config_key = ? AND raw LIKE ? ESCAPE '\\'",
                (self.run.key, f"%{escaped}%"),
            ).fetchall()
        return np.array([s for (s,) in rows], dtype=np.int64)

    def page(self, filters: Mapping[str, str], offset: int = 0, limit: int = PAGE_SIZE) -> dict:
        """One page of the samples that pass `filters`, in run order, and how many pass."""
        check_paging(offset, limit)
        positions = np.flatnonzero(self.mask(filters))
        shown = [int(s) for s in self.seq[positions[offset : offset + limit]]]
        return {
            "total": int(len(positions)),
            "offset": offset,
            "limit": limit,
            "rows": rows_by_seq(self.run, shown),
        }


def _columns(space: LabelSpace, status: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Each sample's confusion column: its top label if ok and a label, else its outcome."""
    columns = answer_columns(space)
    position = {name: i for i, name in enumerate(columns)}
    ok = status == Status.OK.value
    outcome = np.where(ok, np.where(top == "", "unparsed", "out_of_set"), status)
    named = np.array([position.get(t, -1) if t in space else -1 for t in top], dtype=np.int64)
    fallback = np.array([position[o] for o in outcome], dtype=np.int64)
    return np.where(ok & (named >= 0), named, fallback)


def check_paging(offset: int, limit: int) -> None:
    """Refuse a negative offset or a page size outside 1..MAX_PAGE_SIZE."""
    if offset < 0 or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InputError(f"offset must be ≥ 0 and limit 1–{MAX_PAGE_SIZE} (got {offset}, {limit})")


def rows_by_seq(run: Run, seqs: list[int]) -> list[dict[str, Any]]:
    """The list rows (id, gold, answers, status, raw preview) of the given seqs, in that order."""
    answer, params = answer_sql(run.label_space)
    found: dict[int, dict[str, Any]] = {}
    with reading(run) as conn:
        for start in range(0, len(seqs), _IDS_PER_QUERY):
            chunk = seqs[start : start + _IDS_PER_QUERY]
            cursor = conn.execute(
                f"SELECT seq, sample_id, gold, labels, status, substr(raw, 1, {RAW_PREVIEW}), "
                f"length(raw), reason, {answer} FROM predictions "
                f"WHERE seq IN ({', '.join('?' * len(chunk))})",
                [*params, *chunk],
            )
            for seq, sample_id, gold, labels, status, raw, length, reason, column in cursor:
                found[seq] = {
                    "sample_id": sample_id,
                    "gold": json.loads(gold),
                    "labels": json.loads(labels),
                    "status": status,
                    "raw": raw,
                    "raw_truncated": length > RAW_PREVIEW,
                    "reason": reason,
                    "answer": column,
                }
    return [found[s] for s in seqs]
