"""The local executor: batches predicted in this process, or in a pool of worker processes."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from emovlm.errors import EmovlmError, InputError
from emovlm.recognizers.base import Recognizer
from emovlm.run.executors.batch import (
    RecognizerFactory,
    WorkerRecognizer,
    predict_batch,
    worker_recognizer,
)
from emovlm.types import Prediction, Sample

IN_FLIGHT_PER_WORKER = 2
"""Batches queued per worker process: enough to keep each busy, few enough to stream."""

_PARENT_POLL_SECONDS = 1.0


class LocalExecutor:
    """Predict batches on this machine: in this process, or in `workers` processes.

    In-process (`workers=None`) suits servers (the recognizer keeps its own requests in flight)
    and local GPU models (the batch is the model's batch). Worker processes (`workers=N`) suit
    CPU-bound recognizers: each process builds its own recognizer and predicts whole batches, at
    most IN_FLIGHT_PER_WORKER batches per process are queued, and the results come back in input
    order to the run's one writer. Worker processes end when the run ends or their parent dies.
    """

    name = "local"

    def __init__(
        self, workers: int | None = None, recognizer_factory: RecognizerFactory | None = None
    ) -> None:
        if workers is not None and workers < 1:
            raise InputError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self.recognizer_factory = recognizer_factory

    def map(
        self, recognizer: Recognizer, batches: Iterable[list[Sample]]
    ) -> Iterator[tuple[list[Sample], list[Prediction]]]:
        """Predict each batch; yield (batch, predictions) in input order."""
        if self.workers is None:
            for batch in batches:
                yield batch, predict_batch(recognizer, batch)
            return
        worker = worker_recognizer(recognizer, self.recognizer_factory)
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(worker, os.getpid()),
        )
        queued: deque[tuple[list[Sample], Future[list[Prediction]]]] = deque()
        try:
            for batch in batches:
                queued.append((batch, pool.submit(_predict_in_worker, batch)))
                if len(queued) >= IN_FLIGHT_PER_WORKER * self.workers:
                    yield _finished(*queued.popleft())
            while queued:
                yield _finished(*queued.popleft())
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def _finished(
    batch: list[Sample], future: Future[list[Prediction]]
) -> tuple[list[Sample], list[Prediction]]:
    """The batch and its predictions, once its worker is done; a dead worker stops the run."""
    try:
        return batch, future.result()
    except BrokenProcessPool:
        raise EmovlmError(
            f"a worker process died while predicting samples {batch[0].id} to {batch[-1].id} "
            "(killed, out of memory, or a crash in native code); the rows written so far are "
            "kept: rerun with --resume, with fewer --workers or without them"
        ) from None


_recognizer: Recognizer | None = None
_setup_error: Exception | None = None


def _start_worker(worker: WorkerRecognizer, parent: int) -> None:
    """Build this worker's recognizer (keeping a failure to raise on its first batch)."""
    global _recognizer, _setup_error
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    try:
        _recognizer = worker.build()
    except Exception as exc:
        _setup_error = exc


def _exit_with_parent(parent: int) -> None:
    """End this worker soon after its parent process is gone (even after SIGKILL)."""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(1)


def _predict_in_worker(batch: Sequence[Sample]) -> list[Prediction]:
    """Predict one batch with this worker's recognizer."""
    if _setup_error is not None:
        raise _setup_error
    assert _recognizer is not None
    return predict_batch(_recognizer, batch)
