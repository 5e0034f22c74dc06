"""Evaluate a recognizer on a dataset into a run folder: stream, predict, store, resume, report.

The loop is: stream the dataset's samples → skip those already stored → the executor predicts
them (here, in worker processes, or on Ray) within a bounded window → each prediction, as it
finishes, goes to one writer that commits rows in groups (at most GROUP_ROWS rows, or GROUP_SECONDS
after the oldest uncommitted one, or as soon as no other prediction is waiting). Memory stays
flat as the dataset grows: nothing holds the whole dataset.
"""

from __future__ import annotations

import itertools
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emovlm.data.base import Dataset
from emovlm.errors import EmovlmError, InputError
from emovlm.eval.tables import FrameTableWriter, frames_dir, read_frame_tables, sample_ids
from emovlm.recognizers.base import Recognizer
from emovlm.run.config import (
    CONFIG_FILE,
    config_key,
    find_config,
    label_space_of,
    record_config,
    record_execution,
    report_dir,
    resolve_config,
)
from emovlm.run.executors import Executor
from emovlm.run.executors.local import LocalExecutor
from emovlm.run.lock import RunLock
from emovlm.run.progress import EvalProgress
from emovlm.run.store import STORE_FILE, RunStore
from emovlm.thumbnails import MAX_PER_SAMPLE as MAX_THUMBNAILS
from emovlm.types import Prediction, Sample, Status

STOP_AFTER_FAILURES = 32
"""Default of `stop_after_failures`: this many failed samples in a row stop the run."""


_SEEN_CACHE_KIB = 256
"""Page cache of the temporary database of seen sample ids; the rest stays on disk."""

GROUP_ROWS = 64
"""The writer commits at least every this many rows."""

GROUP_SECONDS = 1.0
"""…and at most this long after the oldest row it has not committed yet."""


class TooManyFailuresError(EmovlmError):
    """The run stopped because `stop_after_failures` samples in a row failed."""


@dataclass(frozen=True)
class RunSummary:
    """What one evaluation (or report rebuild) of one configuration did and found.

    `n_total` samples were considered (the dataset up to the limit); `n_done_before` of them
    already had rows and were skipped; `n_new` were predicted now; `n_failed` rows of this
    configuration in the store have status failed after the call.
    """

    run_dir: Path
    config_key: str
    n_total: int
    n_done_before: int
    n_new: int
    n_failed: int
    metrics: dict[str, Any] = field(default_factory=dict)
    report_files: dict[str, Path] = field(default_factory=dict)


def evaluate(
    dataset: Dataset,
    recognizer: Recognizer,
    run_dir: Path,
    *,
    dataset_config: Mapping[str, Any],
    batch_size: int = 8,
    limit: int | None = None,
    resume: bool = True,
    retry_failed: bool = False,
    progress: bool = True,
    report: bool = True,
    n_bootstrap: int = 1000,
    seed: int = 0,
    executor: Executor | None = None,
    stop_after_failures: int = STOP_AFTER_FAILURES,
    thumbnails: int = MAX_THUMBNAILS,
) -> RunSummary:
    """Predict every sample of `dataset` not yet in the run folder, store each one, then report.

    `executor` runs the recognizer (default: in this process, `LocalExecutor()`) and hands back
    predictions as they finish; whatever runs them, rows are written by this process alone, in
    the order they finish, in group commits (see GROUP_ROWS, GROUP_SECONDS): a kill loses at
    most the last second of rows, and a served model's answers behind them are in its response
    cache already. Local models get micro-batches of `batch_size`. A micro-batch whose `predict`
    raises is retried one sample at a time; a sample that still raises is stored as failed with
    the reason "ExceptionType: message". When
    `stop_after_failures` samples in a row have failed (0: never), the run stops with
    TooManyFailuresError naming the most common reason. KeyboardInterrupt (and a missing
    dependency, asset or unusable backend, which no sample could get past) also stops the run;
    rows written so far are kept, and calling again with `resume=True` carries on.
    `thumbnails` is how many thumbnails of what the model saw each row keeps (0: none).
    """
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if limit is not None and limit < 0:
        raise InputError(f"limit must be zero or more, got {limit}")
    if thumbnails < 0:
        raise InputError(f"--thumbnails must be 0 (none) or more, got {thumbnails}")
    if stop_after_failures < 0:
        raise InputError(
            f"stop after failures must be 0 (never) or more, got {stop_after_failures}"
        )
    _check_label_spaces(dataset, recognizer)
    config = resolve_config(
        {"name": dataset.name, **dataset_config},
        recognizer.name,
        recognizer.config(),
        dataset.label_space,
    )
    key = config_key(config)
    run_dir = Path(run_dir)
    executor = executor or LocalExecutor()
    with RunLock(run_dir), RunStore(run_dir, thumbnails=thumbnails) as store:
        counts = store.counts(key)
        n_rows = sum(counts.values())
        if n_rows and not resume:
            raise InputError(
                f"{run_dir} already holds {n_rows} rows of this configuration (key {key}); "
                "pass --resume to continue it or pick another --run-dir"
            )
        entry = record_config(run_dir, config)
        n_skip = n_rows - (counts[Status.FAILED.value] if retry_failed else 0)
        selection = _Selection(dataset, store, key, limit, retry_failed)
        total = _expected_total(dataset, limit)
        already = min(n_skip, total) if total is not None else n_skip
        streak = _FailureStreak(stop_after_failures)
        with (
            EvalProgress(f"{dataset.name} · {recognizer.name}", total, already, progress) as bar,
            closing(selection),
            closing(executor.stream(recognizer, selection.samples(batch_size), batch_size)) as done,
            _GroupWriter(store.path, key, replace=retry_failed, thumbnails=thumbnails) as writer,
            FrameTableWriter(frames_dir(run_dir, key)) as frame_tables,
        ):
            for sample, prediction in done:
                writer.add(prediction, sample.labels, sample.vad)
                frame_tables.add([prediction])
                bar.advance([prediction.status])
                streak.update([prediction])
        run_stats = getattr(recognizer, "run_stats", None)
        stats = run_stats() if callable(run_stats) else None
        if stats:
            entry = record_execution(run_dir, key, stats)
        summary = RunSummary(
            run_dir=run_dir,
            config_key=key,
            n_total=selection.n_seen,
            n_done_before=selection.n_skipped,
            n_new=selection.n_seen - selection.n_skipped,
            n_failed=store.counts(key)[Status.FAILED.value],
        )
        if not report or not summary.n_total:
            return summary
        return _with_report(summary, store, entry, n_bootstrap, seed)


def rebuild_report(
    run_dir: Path, *, config_key: str | None = None, n_bootstrap: int = 1000, seed: int = 0
) -> RunSummary:
    """Recompute metrics.json, report.md and report.html of one configuration from its stored rows.

    `config_key` may be a unique prefix; it can be left out when the folder holds one configuration.
    """
    run_dir = Path(run_dir)
    _require_run_folder(run_dir)
    with RunLock(run_dir), RunStore(run_dir, create=False) as store:
        entry = find_config(run_dir, config_key)
        key = entry["key"]
        counts = store.counts(key)
        n_rows = sum(counts.values())
        if not n_rows:
            raise InputError(
                f"{run_dir} has no rows for configuration {key}; run `emovlm eval` with it first"
            )
        summary = RunSummary(run_dir, key, n_rows, n_rows, 0, counts[Status.FAILED.value])
        return _with_report(summary, store, entry, n_bootstrap, seed)


class _Selection:
    """The dataset's samples up to the limit, without those already stored, streamed.

    Sample ids seen so far are kept in a private temporary SQLite database (on disk, with a
    small page cache) and stored ids are looked up batch by batch, so memory does not grow
    with the dataset.
    """

    def __init__(
        self, dataset: Dataset, store: RunStore, key: str, limit: int | None, retry_failed: bool
    ) -> None:
        self._dataset = dataset
        self._store = store
        self._key = key
        self._limit = limit
        self._retry_failed = retry_failed
        self._seen = sqlite3.connect("")
        self._seen.execute(f"PRAGMA cache_size = -{_SEEN_CACHE_KIB}")
        self._seen.execute("CREATE TABLE seen (id TEXT PRIMARY KEY)")
        self.n_seen = 0
        self.n_skipped = 0

    def close(self) -> None:
        """Drop the temporary database of seen ids."""
        self._seen.close()

    def samples(self, chunk_size: int) -> Iterator[Sample]:
        """Stream the samples to predict, refusing duplicate ids; stored ids are looked up
        `chunk_size` samples at a time."""
        samples = itertools.islice(self._dataset.samples(), self._limit)
        while chunk := list(itertools.islice(samples, chunk_size)):
            ids = [s.id for s in chunk]
            self._refuse_repeats(ids)
            stored = self._store.ids_with_rows(self._key, ids, failed_too=not self._retry_failed)
            self.n_seen += len(chunk)
            self.n_skipped += len(stored)
            yield from (sample for sample in chunk if sample.id not in stored)

    def _refuse_repeats(self, ids: Sequence[str]) -> None:
        """Remember `ids`, or raise InputError naming one the dataset already yielded."""
        for sample_id in ids:
            try:
                self._seen.execute("INSERT INTO seen VALUES (?)", (sample_id,))
            except sqlite3.IntegrityError:
                raise InputError(
                    f"dataset {self._dataset.name!r} yields sample id {sample_id!r} twice; "
                    "sample ids must be unique (look for a duplicated row in its annotations)"
                ) from None


_DONE = object()


class _GroupWriter:
    """The run's one writer: a thread with its own connection to the store, committing rows in
    groups — GROUP_ROWS at most, GROUP_SECONDS after the oldest waiting row at the latest, and
    at once when no further row is waiting. Leaving the block commits what is left, also on an
    error or Ctrl-C; an error of the writer is raised in the run's thread."""

    def __init__(self, path: Path, key: str, *, replace: bool, thumbnails: int) -> None:
        self._path, self._key, self._replace = path, key, replace
        self._thumbnails = thumbnails
        self._queue: queue.Queue[Any] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="emovlm-writer", daemon=True)

    def __enter__(self) -> _GroupWriter:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self._queue.put(_DONE)
        self._thread.join()
        if self._error is not None and exc_type is None:
            raise self._error

    def add(
        self, prediction: Prediction, gold: Sequence[str], vad: tuple[float, ...] | None = None
    ) -> None:
        """Queue one row (prediction, gold labels, gold VAD) for the next commit."""
        if self._error is not None:
            raise self._error
        self._queue.put((prediction, gold, vad))

    def _run(self) -> None:
        try:
            with RunStore(self._path, thumbnails=self._thumbnails) as store:
                self._commit_groups(store)
        except BaseException as exc:  # handed to the run's thread
            self._error = exc

    def _commit_groups(self, store: RunStore) -> None:
        rows: list[tuple[Prediction, Sequence[str], Any]] = []
        deadline = 0.0
        while True:
            try:
                item = self._queue.get_nowait() if rows else self._queue.get()
            except queue.Empty:
                item = None  # nothing else is waiting: commit now
            if item is _DONE:
                break
            if item is not None:
                if not rows:
                    deadline = time.monotonic() + GROUP_SECONDS
                rows.append(item)
                if len(rows) < GROUP_ROWS and time.monotonic() < deadline:
                    continue
            self._commit(store, rows)
            rows = []
        if rows:
            self._commit(store, rows)

    def _commit(
        self, store: RunStore, rows: Sequence[tuple[Prediction, Sequence[str], Any]]
    ) -> None:
        predictions, gold, vads = zip(*rows, strict=True)
        store.write(self._key, predictions, gold, replace=self._replace, gold_vad=vads)


class _FailureStreak:
    """Counts failed predictions in a row and stops the run when there are `limit` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reasons: Counter[str] = Counter()
        self.last = ""

    def update(self, predictions: Sequence[Prediction]) -> None:
        """Take finished predictions into account; raise TooManyFailuresError at the limit."""
        for prediction in predictions:
            if prediction.status is not Status.FAILED:
                self.reasons.clear()
                continue
            self.reasons[prediction.reason] += 1
            self.last = prediction.sample_id
            if self.limit and self.reasons.total() >= self.limit:
                self._stop()

    def _stop(self) -> None:
        reason, count = self.reasons.most_common(1)[0]
        raise TooManyFailuresError(
            f"stopped after {self.reasons.total()} samples in a row failed (the last: "
            f"{self.last}); {count} of them: {reason} — the rows written so far are kept: fix "
            "the cause, then rerun with --resume --retry-failed (--stop-after-failures 0 "
            "never stops)"
        )


def _with_report(
    summary: RunSummary, store: RunStore, entry: Mapping[str, Any], n_bootstrap: int, seed: int
) -> RunSummary:
    """The summary with metrics scored from the stored rows and the report files written.

    Rows are read in sample-id order (the order answers came in varies), a chunk of columns at a
    time: memory does not grow with the run, only the rows the report shows are read whole.
    """
    from emovlm.eval.columns import EXTRA_KEYS, ScoreColumns
    from emovlm.eval.report import MAX_TIMELINES, ExamplePicker, notices, write_report

    key, space = summary.config_key, label_space_of(entry)
    n_rows = store.count(key)
    columns = ScoreColumns(space, n_rows)
    picker = ExamplePicker()
    for predictions, gold, gold_vad in store.chunks(key, scores=columns.multi, extras=EXTRA_KEYS):
        columns.add(gold, predictions, gold_vad)
        picker.add(predictions, gold)
    metrics = columns.score(n_bootstrap, seed)
    with_trajectory, n_timelines = store.first_with(key, "trajectory", MAX_TIMELINES)
    framed, n_framed = sample_ids(frames_dir(summary.run_dir, key), MAX_TIMELINES)
    shown, shown_gold = store.rows_by_id(key, sorted({*picker.ids, *with_trajectory, *framed}))
    out_dir = report_dir(summary.run_dir, key)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = write_report(
        metrics,
        out_dir,
        title=_title(entry),
        predictions=shown,
        gold=shown_gold,
        n_predictions=n_rows,
        n_timelines=n_timelines + n_framed,
        warnings=notices(entry["recognizer"]["config"]),
        frames=read_frame_tables(frames_dir(summary.run_dir, key), framed),
        execution=entry.get("execution"),
    )
    return replace(summary, metrics=metrics, report_files=dict(files))


def _title(entry: Mapping[str, Any]) -> str:
    """A report title naming the dataset, split, recognizer and configuration key."""
    dataset = entry.get("dataset", {})
    split = " ".join(str(dataset[k]) for k in ("split", "fold") if dataset.get(k) is not None)
    where = f"{dataset.get('name', 'dataset')} {split}".strip()
    return f"{where} · {entry['recognizer']['name']} (configuration {entry['key']})"


def _check_label_spaces(dataset: Dataset, recognizer: Recognizer) -> None:
    """Refuse a recognizer that answers in another label space than the dataset's."""
    if recognizer.label_space != dataset.label_space:
        raise InputError(
            f"recognizer {recognizer.name!r} answers in label set "
            f"{recognizer.label_space.name!r} but dataset {dataset.name!r} uses "
            f"{dataset.label_space.name!r}; build the recognizer with the dataset's label space"
        )


def _expected_total(dataset: Dataset, limit: int | None) -> int | None:
    """How many samples the run will consider, when the dataset has a length or a limit is set."""
    try:
        size = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        return limit
    return size if limit is None else min(size, limit)


def _require_run_folder(run_dir: Path) -> None:
    """Refuse a path that is not a run folder, naming what is missing."""
    if not run_dir.is_dir():
        raise InputError(
            f"run folder {run_dir} does not exist; pass the --run-dir of an `emovlm eval`"
        )
    for name in (CONFIG_FILE, STORE_FILE):
        if not (run_dir / name).is_file():
            raise InputError(
                f"{run_dir} is not an emovlm run folder: {name} is missing "
                f"(expected {run_dir / name}, written by `emovlm eval --run-dir`)"
            )
