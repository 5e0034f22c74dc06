"""The run store: one SQLite row per (configuration key, sample), written batch by batch.

Rows are read back whole (`rows`) or, for scoring a run of any size, a chunk at a time with only
the columns scoring and the report need (`chunks`).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emovlm.errors import InputError
from emovlm.run.plain import to_plain
from emovlm.thumbnails import EXTRA_KEY as THUMBNAILS_KEY
from emovlm.thumbnails import MAX_PER_SAMPLE, decode_entries
from emovlm.types import Cost, Prediction, Status

STORE_FILE = "store.sqlite"
"""Name of the SQLite file inside a run folder."""

SCHEMA_VERSION = 2
"""Version of the table layout below; schema 1 stores are upgraded on opening, newer ones refused.

2: gold valence, arousal and dominance per row (NULL when the sample has none).
"""

CHUNK_ROWS = 10_000
"""Rows per chunk of `RunStore.chunks`."""

Vad = tuple[float, float, float]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    config_key TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    gold TEXT NOT NULL,
    labels TEXT NOT NULL,
    scores TEXT,
    raw TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    calls INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    visual_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    extra TEXT NOT NULL,
    finished TEXT NOT NULL,
    gold_valence REAL,
    gold_arousal REAL,
    gold_dominance REAL,
    UNIQUE (config_key, sample_id)
);
CREATE TABLE IF NOT EXISTS thumbnails (
    config_key TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    caption TEXT NOT NULL,
    jpeg BLOB NOT NULL,
    PRIMARY KEY (config_key, sample_id, idx)
);
"""
_GOLD_VAD = ("gold_valence", "gold_arousal", "gold_dominance")
_UPGRADE_FROM_1 = [f"ALTER TABLE predictions ADD COLUMN {c} REAL" for c in _GOLD_VAD]

_COLUMNS = (
    "config_key", "sample_id", "gold", "labels", "scores", "raw", "status", "reason", "calls",
    "input_tokens", "visual_tokens", "output_tokens", "seconds", "extra", "finished", *_GOLD_VAD,
)  # fmt: skip
_PLACEHOLDERS = ", ".join("?" * len(_COLUMNS))
_INSERT = f"INSERT INTO predictions ({', '.join(_COLUMNS)}) VALUES ({_PLACEHOLDERS})"
_READ_COLUMNS = ", ".join(_COLUMNS[1 : _COLUMNS.index("finished")])
_CHUNK_COLUMNS = (
    "sample_id, gold, labels, {scores}, CASE WHEN status = 'ok' THEN '' ELSE raw END, status, "
    "reason, 0, 0, 0, 0, 0.0, json_object({extras}), gold_valence, gold_arousal, gold_dominance"
)
"""The columns `RunStore.chunks` reads: those of `_from_row` (with no cost), then the gold VAD."""
_UPDATED = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[2:])
_IGNORE_EXISTING = f"{_INSERT} ON CONFLICT (config_key, sample_id) DO NOTHING"
_REPLACE_EXISTING = f"{_INSERT} ON CONFLICT (config_key, sample_id) DO UPDATE SET {_UPDATED}"
_IDS_PER_QUERY = 500


class RunStore:
    """The predictions of a run folder's configurations, kept in `store.sqlite` (WAL mode)."""

    def __init__(
        self, path: Path, *, create: bool = True, thumbnails: int = MAX_PER_SAMPLE
    ) -> None:
        """Open a run store from its run folder or its store.sqlite, creating it if asked.

        `thumbnails` is how many of a prediction's extra["thumbnails"] are kept (0: none).
        """
        self.thumbnails = thumbnails
        path = Path(path)
        self.path = path if path.suffix == ".sqlite" else path / STORE_FILE
        if not self.path.is_file():
            if not create:
                raise InputError(
                    f"{self.path.parent} is not an emovlm run folder: {self.path.name} is missing "
                    f"(expected {self.path}, written by `emovlm eval --run-dir`)"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, timeout=30.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            with self._conn:
                self._conn.executescript(_SCHEMA)
                self._conn.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path} is not a readable SQLite store ({exc})") from exc
        self._check_schema_version()

    def _check_schema_version(self) -> None:
        """Upgrade a schema 1 store in place; refuse one written by a newer emovlm."""
        (version,) = self._conn.execute(
            "SELECT value FROM meta WHERE name = 'schema_version'"
        ).fetchone()
        if int(version) == 1:
            with self._conn:
                for statement in _UPGRADE_FROM_1:
                    self._conn.execute(statement)
                self._conn.execute(
                    "UPDATE meta SET value = ? WHERE name = 'schema_version'",
                    (str(SCHEMA_VERSION),),
                )
        elif int(version) != SCHEMA_VERSION:
            self.close()
            raise InputError(
                f"{self.path} uses store schema {version}, this emovlm reads schemas 1 to "
                f"{SCHEMA_VERSION}; open it with the emovlm version that wrote it (or a newer one)"
            )

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> RunStore:
        """Use the store in a `with` block that closes it."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the store."""
        self.close()

    def keys(self) -> list[str]:
        """Configuration keys that have rows, in the order their first row was written."""
        rows = self._conn.execute(
            "SELECT config_key FROM predictions GROUP BY config_key ORDER BY MIN(seq)"
        )
        return [key for (key,) in rows]

    def done_ids(self, key: str) -> set[str]:
        """Ids of the samples that have a row (of any status) for configuration `key`."""
        rows = self._conn.execute("SELECT sample_id FROM predictions WHERE config_key = ?", (key,))
        return {sample_id for (sample_id,) in rows}

    def failed_ids(self, key: str) -> set[str]:
        """Ids of the samples whose row for configuration `key` has status failed."""
        rows = self._conn.execute(
            "SELECT sample_id FROM predictions WHERE config_key = ? AND status = ?",
            (key, Status.FAILED.value),
        )
        return {sample_id for (sample_id,) in rows}

    def ids_with_rows(self, key: str, ids: Sequence[str], *, failed_too: bool = True) -> set[str]:
        """Those of `ids` that have a row for configuration `key` (failed rows only if `failed_too`)."""
        found: set[str] = set()
        status = "" if failed_too else " AND status != ?"
        extra = () if failed_too else (Status.FAILED.value,)
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = list(ids[start : start + _IDS_PER_QUERY])
            rows = self._conn.execute(
                f"SELECT sample_id FROM predictions WHERE config_key = ?{status} "
                f"AND sample_id IN ({', '.join('?' * len(chunk))})",
                (key, *extra, *chunk),
            )
            found.update(sample_id for (sample_id,) in rows)
        return found

    def counts(self, key: str) -> dict[str, int]:
        """Number of rows of configuration `key` per status value (every status, zeros included)."""
        counted = dict(
            self._conn.execute(
                "SELECT status, COUNT(*) FROM predictions WHERE config_key = ? GROUP BY status",
                (key,),
            ).fetchall()
        )
        return {status.value: counted.get(status.value, 0) for status in Status}

    def write(
        self,
        key: str,
        predictions: Sequence[Prediction],
        gold: Sequence[Sequence[str]],
        *,
        replace: bool = False,
        gold_vad: Sequence[Vad | None] | None = None,
    ) -> int:
        """Store one batch in one transaction; return how many rows were added or replaced.

        A sample that already has a row for `key` keeps it unless `replace` is true; a replaced
        row keeps its place in the sample order. `gold_vad` gives each sample's gold valence,
        arousal and dominance (None: unknown).
        """
        if len(predictions) != len(gold):
            raise ValueError(f"{len(predictions)} predictions but {len(gold)} gold label tuples")
        vads = [None] * len(gold) if gold_vad is None else gold_vad
        if len(vads) != len(gold):
            raise ValueError(f"{len(predictions)} predictions but {len(vads)} gold VAD entries")
        finished = datetime.now(UTC).isoformat(timespec="milliseconds")
        thumbs = [
            (p.sample_id, decode_entries(p.extra.get(THUMBNAILS_KEY), p.sample_id, self.thumbnails))
            for p in predictions
        ]
        predictions = [_without_thumbnails(p) for p in predictions]
        values = [
            _to_row(key, p, g, v, finished) for p, g, v in zip(predictions, gold, vads, strict=True)
        ]
        before = self._conn.total_changes
        with self._conn:
            self._conn.executemany(_REPLACE_EXISTING if replace else _IGNORE_EXISTING, values)
            written = self._conn.total_changes - before
            _write_thumbnails(self._conn, key, thumbs, replace=replace)
        return written

    def rows(self, key: str) -> tuple[list[Prediction], list[tuple[str, ...]]]:
        """All predictions of configuration `key` and their gold labels, in first-written order."""
        cursor = self._conn.execute(
            f"SELECT {_READ_COLUMNS} FROM predictions WHERE config_key = ? ORDER BY seq",
            (key,),
        )
        predictions: list[Prediction] = []
        gold: list[tuple[str, ...]] = []
        for row in cursor:
            prediction, labels = _from_row(row)
            predictions.append(prediction)
            gold.append(labels)
        return predictions, gold

    def count(self, key: str) -> int:
        """Number of rows of configuration `key`."""
        return self._conn.execute(
            "SELECT COUNT(*) FROM predictions WHERE config_key = ?", (key,)
        ).fetchone()[0]

    def chunks(
        self,
        key: str,
        *,
        scores: bool = True,
        extras: Sequence[str] = ("vad",),
        size: int | None = None,
    ) -> Iterator[tuple[list[Prediction], list[tuple[str, ...]], list[Vad | None]]]:
        """The rows of configuration `key` in sample-id order, `size` (CHUNK_ROWS) at a time.

        Each chunk is (predictions, gold labels, gold VAD). The predictions hold what scoring and
        the report's example table read: labels, scores (None unless `scores`), status, reason,
        raw text (empty for ok rows), and `extra` with only the non-null entries named in
        `extras`; no cost. Only one chunk is in memory at a time.
        """
        columns = _CHUNK_COLUMNS.format(
            scores="scores" if scores else "NULL",
            extras=", ".join(["?, json_extract(extra, ?)"] * len(extras)),
        )
        paths = [part for name in extras for part in (name, f'$."{name}"')]
        cursor = self._conn.execute(
            f"SELECT {columns} FROM predictions WHERE config_key = ? ORDER BY sample_id",
            (*paths, key),
        )
        while rows := cursor.fetchmany(size or CHUNK_ROWS):
            predictions, gold, vads = [], [], []
            for *row, valence, arousal, dominance in rows:
                prediction, labels = _from_row(row, null_extras=False)
                predictions.append(prediction)
                gold.append(labels)
                vad = (valence, arousal, dominance)
                vads.append(None if None in vad else vad)
            yield predictions, gold, vads

    def first_with(self, key: str, name: str, limit: int) -> tuple[list[str], int]:
        """Ids of the first `limit` rows of `key` (sample-id order) whose extra has a non-null
        `name`, and how many rows have one."""
        where = "config_key = ? AND json_extract(extra, ?) IS NOT NULL"
        path = f'$."{name}"'
        (total,) = self._conn.execute(
            f"SELECT COUNT(*) FROM predictions WHERE {where}", (key, path)
        ).fetchone()
        rows = self._conn.execute(
            f"SELECT sample_id FROM predictions WHERE {where} ORDER BY sample_id LIMIT ?",
            (key, path, limit),
        )
        return [sample_id for (sample_id,) in rows], total

    def rows_by_id(
        self, key: str, ids: Sequence[str]
    ) -> tuple[list[Prediction], list[tuple[str, ...]]]:
        """The whole rows of `ids` that configuration `key` has, with gold labels, by sample id."""
        found = []
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = list(ids[start : start + _IDS_PER_QUERY])
            found += [
                _from_row(row)
                for row in self._conn.execute(
                    f"SELECT {_READ_COLUMNS} FROM predictions WHERE config_key = ? "
                    f"AND sample_id IN ({', '.join('?' * len(chunk))})",
                    (key, *chunk),
                )
            ]
        found.sort(key=lambda row: row[0].sample_id)
        return [p for p, _ in found], [g for _, g in found]


def _to_json(value: Any, where: str) -> str:
    """Compact JSON of a plain form of `value`, keeping unicode as is."""
    return json.dumps(to_plain(value, where), ensure_ascii=False, separators=(",", ":"))


def _to_row(
    key: str, p: Prediction, gold: Sequence[str], vad: Vad | None, finished: str
) -> tuple[Any, ...]:
    """The column values that store one prediction, its gold labels and gold VAD."""
    where = f"prediction for sample {p.sample_id!r}"
    scores = None if p.scores is None else _to_json(p.scores, f"scores of {where}")
    return (
        key,
        p.sample_id,
        _to_json(list(gold), f"gold labels of sample {p.sample_id!r}"),
        _to_json(list(p.labels), f"labels of {where}"),
        scores,
        p.raw,
        Status(p.status).value,
        p.reason,
        int(p.cost.calls),
        int(p.cost.input_tokens),
        int(p.cost.visual_tokens),
        int(p.cost.output_tokens),
        float(p.cost.seconds),
        _to_json(p.extra, f"extra of {where}"),
        finished,
        *((None, None, None) if vad is None else (float(vad[0]), float(vad[1]), float(vad[2]))),
    )


def _from_row(
    row: Sequence[Any], *, null_extras: bool = True
) -> tuple[Prediction, tuple[str, ...]]:
    """The prediction and gold labels stored in one row (columns sample_id … extra); entries of
    `extra` whose value is null are left out unless `null_extras`."""
    (sample_id, gold, labels, scores, raw, status, reason, *cost, extra_json) = row
    extra = json.loads(extra_json)
    if not null_extras:
        extra = {k: v for k, v in extra.items() if v is not None}
    prediction = Prediction(
        sample_id=sample_id,
        labels=tuple(json.loads(labels)),
        scores=None if scores is None else json.loads(scores),
        raw=raw,
        status=Status(status),
        reason=reason,
        cost=Cost(*cost),
        extra=extra,
    )
    return prediction, tuple(json.loads(gold))


def _without_thumbnails(p: Prediction) -> Prediction:
    """The prediction without extra["thumbnails"] (they go to the thumbnails table)."""
    if THUMBNAILS_KEY not in p.extra:
        return p
    return dataclasses.replace(p, extra={k: v for k, v in p.extra.items() if k != THUMBNAILS_KEY})


def _write_thumbnails(
    conn: sqlite3.Connection,
    key: str,
    thumbs: Sequence[tuple[str, Sequence[tuple[str, bytes]]]],
    *,
    replace: bool,
) -> None:
    """Store each sample's thumbnails; a sample keeps its old ones unless `replace` is true."""
    if replace:
        conn.executemany(
            "DELETE FROM thumbnails WHERE config_key = ? AND sample_id = ?",
            [(key, sample_id) for sample_id, _ in thumbs],
        )
    conn.executemany(
        "INSERT OR IGNORE INTO thumbnails (config_key, sample_id, idx, caption, jpeg) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            (key, sample_id, idx, caption, jpeg)
            for sample_id, pairs in thumbs
            for idx, (caption, jpeg) in enumerate(pairs)
        ],
    )
