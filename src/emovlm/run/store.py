"""The run store: one SQLite row per (configuration key, sample), written batch by batch."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emovlm.errors import InputError
from emovlm.run.plain import to_plain
from emovlm.types import Cost, Prediction, Status

STORE_FILE = "store.sqlite"
"""Name of the SQLite file inside a run folder."""

SCHEMA_VERSION = 1
"""Version of the table layout below; a store with another version is refused."""

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
    UNIQUE (config_key, sample_id)
);
"""

_COLUMNS = (
    "config_key", "sample_id", "gold", "labels", "scores", "raw", "status", "reason", "calls",
    "input_tokens", "visual_tokens", "output_tokens", "seconds", "extra", "finished",
)  # fmt: skip
_PLACEHOLDERS = ", ".join("?" * len(_COLUMNS))
_INSERT = f"INSERT INTO predictions ({', '.join(_COLUMNS)}) VALUES ({_PLACEHOLDERS})"
_READ_COLUMNS = ", ".join(_COLUMNS[1:-1])
_UPDATED = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[2:])
_IGNORE_EXISTING = f"{_INSERT} ON CONFLICT (config_key, sample_id) DO NOTHING"
_REPLACE_EXISTING = f"{_INSERT} ON CONFLICT (config_key, sample_id) DO UPDATE SET {_UPDATED}"
_IDS_PER_QUERY = 500


class RunStore:
    """The predictions of a run folder's configurations, kept in `store.sqlite` (WAL mode)."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        """Open a run store from its run folder or its store.sqlite, creating it if asked."""
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
        (version,) = self._conn.execute(
            "SELECT value FROM meta WHERE name = 'schema_version'"
        ).fetchone()
        if int(version) != SCHEMA_VERSION:
            self.close()
            raise InputError(
                f"{self.path} uses store schema {version}, this emovlm reads schema "
                f"{SCHEMA_VERSION}; open it with the emovlm version that wrote it"
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
    ) -> int:
        """Store one batch in one transaction; return how many rows were added or replaced.

        A sample that already has a row for `key` keeps it unless `replace` is true; a replaced
        row keeps its place in the sample order.
        """
        if len(predictions) != len(gold):
            raise ValueError(f"{len(predictions)} predictions but {len(gold)} gold label tuples")
        finished = datetime.now(UTC).isoformat(timespec="milliseconds")
        values = [_to_row(key, p, g, finished) for p, g in zip(predictions, gold, strict=True)]
        before = self._conn.total_changes
        with self._conn:
            self._conn.executemany(_REPLACE_EXISTING if replace else _IGNORE_EXISTING, values)
        return self._conn.total_changes - before

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


def _to_json(value: Any, where: str) -> str:
    """Compact JSON of a plain form of `value`, keeping unicode as is."""
    return json.dumps(to_plain(value, where), ensure_ascii=False, separators=(",", ":"))


def _to_row(key: str, p: Prediction, gold: Sequence[str], finished: str) -> tuple[Any, ...]:
    """The column values that store one prediction and its gold labels."""
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
    )


def _from_row(row: Sequence[Any]) -> tuple[Prediction, tuple[str, ...]]:
    """The prediction and gold labels stored in one row (columns sample_id … extra)."""
    (sample_id, gold, labels, scores, raw, status, reason, *cost, extra) = row
    prediction = Prediction(
        sample_id=sample_id,
        labels=tuple(json.loads(labels)),
        scores=None if scores is None else json.loads(scores),
        raw=raw,
        status=Status(status),
        reason=reason,
        cost=Cost(*cost),
        extra=json.loads(extra),
    )
    return prediction, tuple(json.loads(gold))
