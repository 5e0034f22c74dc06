"""Evaluate a recognizer on a dataset into a run folder: stream, batch, store, resume, report."""

from __future__ import annotations

import itertools
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emovlm.data.base import Dataset
from emovlm.errors import BackendError, InputError, MissingAssetError, MissingDependencyError
from emovlm.recognizers.base import Recognizer
from emovlm.run.config import (
    CONFIG_FILE,
    config_key,
    find_config,
    label_space_of,
    record_config,
    report_dir,
    resolve_config,
)
from emovlm.run.lock import RunLock
from emovlm.run.progress import EvalProgress
from emovlm.run.store import STORE_FILE, RunStore
from emovlm.types import Cost, Prediction, Sample, Status

_SETUP_ERRORS = (MissingDependencyError, MissingAssetError, BackendError)
"""Errors about the installation, not the sample: they stop the run with their fix instead of
failing every sample in turn."""


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
) -> RunSummary:
    """Predict every sample of `dataset` not yet in the run folder, store each batch, then report.

    A batch whose `predict` raises is retried one sample at a time; a sample that still raises
    is stored as failed with the reason "ExceptionType: message". KeyboardInterrupt (and a
    missing dependency or asset, which no sample could get past) stops the run and keeps the
    rows written so far; calling again with `resume=True` carries on.
    """
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if limit is not None and limit < 0:
        raise InputError(f"limit must be zero or more, got {limit}")
    _check_label_spaces(dataset, recognizer)
    config = resolve_config(
        {"name": dataset.name, **dataset_config},
        recognizer.name,
        recognizer.config(),
        dataset.label_space,
    )
    key = config_key(config)
    run_dir = Path(run_dir)
    with RunLock(run_dir), RunStore(run_dir) as store:
        done = store.done_ids(key)
        if done and not resume:
            raise InputError(
                f"{run_dir} already holds {len(done)} rows of this configuration (key {key}); "
                "pass --resume to continue it or pick another --run-dir"
            )
        entry = record_config(run_dir, config)
        skip = done - store.failed_ids(key) if retry_failed else done
        selection = _Selection(dataset, skip, limit)
        total = _expected_total(dataset, limit)
        already = min(len(skip), total) if total is not None else len(skip)
        with EvalProgress(f"{dataset.name} · {recognizer.name}", total, already, progress) as bar:
            for batch in selection.batches(batch_size):
                predictions = _predict_batch(recognizer, batch)
                store.write(key, predictions, [s.labels for s in batch], replace=retry_failed)
                bar.advance([p.status for p in predictions])
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
    """The dataset's samples up to the limit, without those already done, cut into batches."""

    def __init__(self, dataset: Dataset, skip: set[str], limit: int | None) -> None:
        self._dataset = dataset
        self._skip = skip
        self._limit = limit
        self.n_seen = 0
        self.n_skipped = 0

    def batches(self, size: int) -> Iterator[list[Sample]]:
        """Stream the samples to predict in batches of `size`, refusing duplicate sample ids."""
        seen: set[str] = set()
        batch: list[Sample] = []
        for sample in itertools.islice(self._dataset.samples(), self._limit):
            if sample.id in seen:
                raise InputError(
                    f"dataset {self._dataset.name!r} yields sample id {sample.id!r} twice; "
                    "sample ids must be unique (look for a duplicated row in its annotations)"
                )
            seen.add(sample.id)
            self.n_seen += 1
            if sample.id in self._skip:
                self.n_skipped += 1
                continue
            batch.append(sample)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch


def _predict_batch(recognizer: Recognizer, batch: Sequence[Sample]) -> list[Prediction]:
    """Predict a batch; if that raises, predict its samples one by one, recording failures."""
    started = time.perf_counter()
    try:
        return _checked(recognizer, batch, recognizer.predict(batch))
    except _SETUP_ERRORS:
        raise
    except Exception as exc:
        if len(batch) == 1:
            return [_failure(batch[0], exc, started)]
    return [_predict_one(recognizer, sample) for sample in batch]


def _predict_one(recognizer: Recognizer, sample: Sample) -> Prediction:
    """Predict one sample, turning an exception into a failed prediction."""
    started = time.perf_counter()
    try:
        return _checked(recognizer, [sample], recognizer.predict([sample]))[0]
    except _SETUP_ERRORS:
        raise
    except Exception as exc:
        return _failure(sample, exc, started)


def _checked(
    recognizer: Recognizer, batch: Sequence[Sample], predictions: Iterable[Prediction]
) -> list[Prediction]:
    """The predictions, after checking there is one per sample, in the samples' order."""
    predictions = list(predictions)
    expected = [s.id for s in batch]
    returned = [getattr(p, "sample_id", None) for p in predictions]
    if returned != expected:
        raise ValueError(
            f"recognizer {recognizer.name!r} returned predictions for {returned} "
            f"when asked for {expected}"
        )
    return predictions


def _failure(sample: Sample, exc: Exception, started: float) -> Prediction:
    """A failed prediction whose reason is "ExceptionType: message", keeping the traceback."""
    return replace(
        Prediction.failed(
            sample.id,
            f"{type(exc).__name__}: {exc}",
            Cost(seconds=time.perf_counter() - started),
        ),
        extra={"traceback": "".join(traceback.format_exception(exc))},
    )


def _with_report(
    summary: RunSummary, store: RunStore, entry: Mapping[str, Any], n_bootstrap: int, seed: int
) -> RunSummary:
    """The summary with metrics scored from the stored rows and the report files written."""
    from emovlm.eval.report import write_report
    from emovlm.eval.scoring import score_predictions

    predictions, gold = store.rows(summary.config_key)
    out_dir = report_dir(summary.run_dir, summary.config_key)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = score_predictions(
        gold, predictions, label_space_of(entry), n_bootstrap=n_bootstrap, seed=seed
    )
    files = write_report(
        metrics,
        out_dir,
        title=_title(entry),
        predictions=predictions,
        gold=gold,
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
