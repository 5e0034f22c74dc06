"""Read-only access to run folders: their runs, and each sample's details and thumbnails."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emovlm.errors import InputError
from emovlm.eval.metrics import EXTRA_COLUMNS
from emovlm.eval.tables import PROB_PREFIX, frames_dir, read_frame_tables
from emovlm.labels import LabelSpace, get_label_space
from emovlm.run.config import label_space_of, read_configs, report_dir
from emovlm.run.store import STORE_FILE

RAW_PREVIEW = 240
"""Characters of the raw answer shown in a sample list (the detail view shows all of it)."""


@dataclass(frozen=True)
class Run:
    """One configuration of one run folder, as the explorer shows it."""

    id: str
    folder: Path
    key: str
    label_space: LabelSpace
    config: Mapping[str, Any]

    @property
    def store(self) -> Path:
        """The folder's store.sqlite."""
        return self.folder / STORE_FILE

    @property
    def name(self) -> str:
        """A short human name: folder, recognizer and key prefix."""
        recognizer = (self.config.get("recognizer") or {}).get("name", "?")
        return f"{self.folder.name} · {recognizer} · {self.key[:8]}"

    def describe(self) -> dict[str, Any]:
        """JSON-able description of the run for the front end."""
        return {
            "id": self.id,
            "name": self.name,
            "folder": str(self.folder),
            "key": self.key,
            "label_set": self.label_space.name,
            "labels": list(self.label_space.labels),
            "columns": answer_columns(self.label_space),
            "multi_label": self.label_space.multi_label,
            "dataset": self.config.get("dataset"),
            "recognizer": self.config.get("recognizer"),
        }


def answer_columns(space: LabelSpace) -> list[str]:
    """Confusion-matrix columns: the labels, then out_of_set, unparsed and failed."""
    return [*space.labels, *EXTRA_COLUMNS]


def open_runs(folders: Sequence[Path]) -> list[Run]:
    """Every configuration of every given run folder, in folder then config.yaml order."""
    runs: list[Run] = []
    for folder in folders:
        folder = Path(folder)
        store = folder / STORE_FILE
        if not store.is_file():
            raise InputError(
                f"{folder} is not an emovlm run folder: {STORE_FILE} is missing "
                "(pass a folder written by `emovlm eval --run-dir`)"
            )
        try:
            with closing(connect(store)) as conn:
                keys = [
                    k
                    for (k,) in conn.execute(
                        "SELECT config_key FROM predictions GROUP BY config_key ORDER BY MIN(seq)"
                    )
                ]
        except sqlite3.DatabaseError as exc:
            raise InputError(
                f"{store} is not a readable emovlm store ({exc}); pass a run folder written by "
                "`emovlm eval --run-dir`"
            ) from exc
        configs = {entry["key"]: entry for entry in read_configs(folder)}
        for key in keys:
            config = configs.get(key, {})
            runs.append(Run(str(len(runs)), folder, key, _label_space(folder, key, config), config))
    if not runs:
        raise InputError(
            f"no stored predictions in {', '.join(str(f) for f in folders)}; run `emovlm eval` first"
        )
    return runs


def _label_space(folder: Path, key: str, config: Mapping[str, Any]) -> LabelSpace:
    """The label space of a configuration, from config.yaml or else its metrics.json."""
    if config.get("label_set"):
        return label_space_of(config)
    name = (read_metrics(folder, key) or {}).get("label_set")
    if name is None:
        raise InputError(
            f"{folder}: configuration {key} is in neither config.yaml nor metrics.json, so its "
            "label set is unknown; restore config.yaml or rebuild it with `emovlm report`"
        )
    return get_label_space(name)


def read_metrics(folder: Path, key: str) -> dict[str, Any] | None:
    """The configuration's metrics.json as `emovlm eval` or `emovlm report` wrote it, or None."""
    path = report_dir(folder, key) / "metrics.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path} is not valid JSON ({exc}); rebuild it with `emovlm report {folder}`"
        ) from exc


def connect(store: Path) -> sqlite3.Connection:
    """A read-only connection to a store.sqlite."""
    try:
        return sqlite3.connect(f"file:{store}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{store} is not a readable SQLite store ({exc})") from exc


@contextmanager
def reading(run: Run) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the run's store, closed after use."""
    conn = connect(run.store)
    try:
        yield conn
    finally:
        conn.close()


def answer_sql(space: LabelSpace, table: str = "") -> tuple[str, list[str]]:
    """SQL giving a row's confusion column (label or status column) and its parameters."""
    t = f"{table}." if table else ""
    top = f"json_extract({t}labels, '$[0]')"
    marks = ", ".join("?" * len(space))
    sql = (
        f"(CASE WHEN {t}status != 'ok' THEN {t}status WHEN {top} IS NULL THEN 'unparsed' "
        f"WHEN {top} IN ({marks}) THEN {top} ELSE 'out_of_set' END)"
    )
    return sql, list(space.labels)


def sample_detail(run: Run, sample_id: str) -> dict[str, Any]:
    """Everything stored about one sample: answer, parse, scores, cost, extras, thumbnails."""
    answer, answer_params = answer_sql(run.label_space)
    with reading(run) as conn:
        row = conn.execute(
            f"SELECT sample_id, gold, labels, scores, raw, status, reason, calls, input_tokens, "
            f"visual_tokens, output_tokens, seconds, extra, {answer} FROM predictions "
            "WHERE config_key = ? AND sample_id = ?",
            [*answer_params, run.key, sample_id],
        ).fetchone()
        if row is None:
            raise InputError(f"sample {sample_id!r} has no row in run {run.name}")
        thumbnails = _thumbnail_captions(conn, run.key, sample_id)
    (sid, gold, labels, scores, raw, status, reason, *cost, extra, answer_column) = row
    extra = json.loads(extra)
    return {
        "sample_id": sid,
        "gold": json.loads(gold),
        "labels": json.loads(labels),
        "scores": None if scores is None else json.loads(scores),
        "raw": raw,
        "status": status,
        "reason": reason,
        "answer": answer_column,
        "cost": dict(
            zip(
                ("calls", "input_tokens", "visual_tokens", "output_tokens", "seconds"),
                cost,
                strict=True,
            )
        ),
        "sentences": motion_sentences(extra),
        "timeline": timeline(extra) or frame_timeline(run, sid),
        "thumbnails": thumbnails,
        "extra": {k: v for k, v in extra.items() if k not in _SHOWN_APART},
    }


_SHOWN_APART = ("trajectory", "frames", "windows", "sentences")


def motion_sentences(extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    """MSCE's motion sentences with the frame span each describes (empty for other recognizers)."""
    windows = extra.get("windows")
    if isinstance(windows, list) and windows:
        return [
            {"start": w.get("start"), "end": w.get("end"), "text": w.get("text") or ""}
            for w in windows
            if isinstance(w, Mapping)
        ]
    sentences = extra.get("sentences")
    if isinstance(sentences, list):
        return [{"start": None, "end": None, "text": str(s)} for s in sentences]
    return []


def timeline(extra: Mapping[str, Any]) -> dict[str, Any] | None:
    """The per-frame label probabilities of a video sample, or None when it has none.

    Reads `extra["trajectory"]` ({"times", "labels", "probs"}) and the compact per-frame form
    ({"labels", "time", "probs", ...} as lists); anything else is ignored.
    """
    for name in ("trajectory", "frames"):
        value = extra.get(name)
        if not isinstance(value, Mapping):
            continue
        times = value.get("times", value.get("time"))
        labels, probs = value.get("labels"), value.get("probs")
        if (
            isinstance(times, list)
            and isinstance(labels, list)
            and isinstance(probs, list)
            and len(times) == len(probs)
            and all(isinstance(r, list) and len(r) == len(labels) for r in probs)
        ):
            return {"times": times, "labels": labels, "probs": probs}
    return None


def frame_timeline(run: Run, sample_id: str) -> dict[str, Any] | None:
    """The main face's per-frame probabilities from the run's frame tables (None: no frames).

    A frame without the main face keeps its time with null probabilities: a gap, not a guess.
    """
    folder = frames_dir(run.folder, run.key)
    if not folder.is_dir():
        return None
    table = read_frame_tables(folder, [sample_id])
    if table.empty:
        return None
    labels = table.emo.labels
    table = table.sort_values(["time", "frame"])
    main = table[table["main"].astype(bool)].drop_duplicates("frame").set_index("frame")
    probs = main[[PROB_PREFIX + label for label in labels]]
    rows = []
    times = []
    for frame, time in table.drop_duplicates("frame")[["frame", "time"]].itertuples(index=False):
        times.append(float(time))
        values = probs.loc[frame].tolist() if frame in probs.index else None
        rows.append(None if values is None else [None if v != v else float(v) for v in values])
    return {"times": times, "labels": labels, "probs": rows}


def has_thumbnails(conn: sqlite3.Connection) -> bool:
    """Whether the store has a thumbnails table (stores written before it have none)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'thumbnails'"
    ).fetchone()
    return row is not None


def _thumbnail_captions(conn: sqlite3.Connection, key: str, sample_id: str) -> list[dict]:
    if not has_thumbnails(conn):
        return []
    rows = conn.execute(
        "SELECT idx, caption FROM thumbnails WHERE config_key = ? AND sample_id = ? ORDER BY idx",
        (key, sample_id),
    )
    return [{"idx": idx, "caption": caption} for idx, caption in rows]


def thumbnail(run: Run, sample_id: str, idx: int) -> bytes:
    """The JPEG bytes of one stored thumbnail."""
    with reading(run) as conn:
        row = (
            conn.execute(
                "SELECT jpeg FROM thumbnails WHERE config_key = ? AND sample_id = ? AND idx = ?",
                (run.key, sample_id, idx),
            ).fetchone()
            if has_thumbnails(conn)
            else None
        )
    if row is None:
        raise InputError(f"sample {sample_id!r} has no thumbnail {idx} in run {run.name}")
    return bytes(row[0])
