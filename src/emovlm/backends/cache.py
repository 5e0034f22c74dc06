"""The response cache: model answers stored by a hash of everything that determines them.

A key covers the backend, the model fingerprint, the full request (images and frames by the
SHA-256 of their pixels) and the generation settings, so a cached answer is reused only for the
identical question to the identical model. The store is one SQLite file (WAL mode, safe for
several processes; synchronous=NORMAL: a committed answer survives a killed process, only an
OS crash or power loss can drop the last ones); values are JSON.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emovlm.assets import cache_dir

_CHUNK = 500


CACHE_FILE = "responses.sqlite"


def default_cache_folder() -> Path:
    """Where responses are cached unless told otherwise: the emovlm cache folder ($EMOVLM_CACHE …)."""
    return cache_dir()


def _canonical(value: Any) -> Any:
    """A JSON-able form of a request: arrays become a hash of dtype, shape and bytes."""
    if isinstance(value, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return {"__array__": [str(value.dtype), list(value.shape), digest]}
    if is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **_canonical(asdict(value))}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    raise TypeError(f"cannot build a cache key from {type(value).__name__}")


def request_key(*parts: Any) -> str:
    """SHA-256 of the canonical JSON of `parts` (dataclasses, mappings, sequences, arrays, scalars)."""
    text = json.dumps(_canonical(list(parts)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """A persistent key → JSON value store for model answers, in `folder`/responses.sqlite."""

    def __init__(self, folder: Path | str | None = None) -> None:
        base = Path(folder).expanduser() if folder is not None else default_cache_folder()
        base.mkdir(parents=True, exist_ok=True)
        self.path = base / CACHE_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            # each commit survives the process being killed; only an OS crash may lose the last
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The cached values of those keys that are present."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        with self._lock:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk
                ).fetchall()
                found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put_many(self, items: Mapping[str, Any]) -> None:
        """Store (or replace) values by key, in one transaction."""
        rows = [(k, json.dumps(v, separators=(",", ":"))) for k, v in items.items()]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?)", rows)

    def __len__(self) -> int:
        """Number of cached responses."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()
