"""The local executor: predictions streamed in this process, or from a pool of worker processes."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from emovlm.errors import EmovlmError, InputError
from emovlm.recognizers.base import Recognizer, predict_batch, stream_of
from emovlm.run.executors import with_samples
from emovlm.run.executors.batch import RecognizerFactory, WorkerRecognizer, worker_recognizer
from emovlm.types import Prediction, Sample

IN_FLIGHT_PER_WORKER = 2
"""Micro-batches queued per worker process: enough to keep each busy, few enough to stream."""

_PARENT_POLL_SECONDS = 1.0


class LocalExecutor:
    """Predict on this machine: in this process, or in `workers` processes.

    In-process (`workers=None`) suits servers and local GPU models: the recognizer's `stream`
    keeps its own window of requests in flight, or gets micro-batches of `batch_size` (the
    model's batch). Worker processes (`workers=N`) suit CPU-bound recognizers: each process
    builds its own recognizer, at most IN_FLIGHT_PER_WORKER micro-batches per process are queued,
    and each micro-batch's predictions come back as soon as it is done, whichever finishes first.
    An error that stops the run (a setup error, a dead worker) is raised once the micro-batches
    already in flight have come back, so their predictions are stored. Worker processes end when
    the run ends or their parent dies.
    """

    name = "local"

    def __init__(
        self, workers: int | None = None, recognizer_factory: RecognizerFactory | None = None
    ) -> None:
        if workers is not None and workers < 1:
            raise InputError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self.recognizer_factory = recognizer_factory

    def stream(
        self, recognizer: Recognizer, samples: Iterable[Sample], batch_size: int
    ) -> Iterator[tuple[Sample, Prediction]]:
        """Predict each sample; yield (sample, prediction) as each is done."""
        if self.workers is None:
            return with_samples(samples, lambda feed: stream_of(recognizer, feed, batch_size))
        return self._in_workers(recognizer, samples, batch_size, self.workers)

    def _in_workers(
        self, recognizer: Recognizer, samples: Iterable[Sample], batch_size: int, workers: int
    ) -> Iterator[tuple[Sample, Prediction]]:
        worker = worker_recognizer(recognizer, self.recognizer_factory)
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(worker, os.getpid()),
        )
        iterator = iter(samples)
        in_flight: dict[Future[list[Prediction]], list[Sample]] = {}
        stop: BaseException | None = None
        try:
            while True:
                while (
                    stop is None
                    and len(in_flight) < IN_FLIGHT_PER_WORKER * workers
                    and (batch := list(itertools.islice(iterator, batch_size)))
                ):
                    try:
                        in_flight[_submit(pool, batch)] = batch
                    except EmovlmError as exc:
                        stop = exc
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    batch = in_flight.pop(future)
                    try:
                        predictions = _finished(batch, future)
                    except Exception as exc:
                        stop = stop or exc  # the others in flight are still collected
                        continue
                    yield from zip(batch, predictions, strict=True)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        if stop is not None:
            raise stop


def _dead_worker(batch: Sequence[Sample]) -> EmovlmError:
    """The error that stops a run whose worker process died."""
    return EmovlmError(
        f"a worker process died while predicting samples {batch[0].id} to {batch[-1].id} "
        "(killed, out of memory, or a crash in native code); the rows written so far are "
        "kept: rerun with --resume, with fewer --workers or without them"
    )


def _submit(pool: ProcessPoolExecutor, batch: list[Sample]) -> Future[list[Prediction]]:
    """Queue a micro-batch; a pool broken by a dead worker (even between two submits) stops the run."""
    try:
        return pool.submit(_predict_in_worker, batch)
    except BrokenProcessPool:
        raise _dead_worker(batch) from None


def _finished(batch: list[Sample], future: Future[list[Prediction]]) -> list[Prediction]:
    """The micro-batch's predictions once its worker is done; a dead worker stops the run."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise _dead_worker(batch) from None


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
    """Predict one micro-batch with this worker's recognizer."""
    if _setup_error is not None:
        raise _setup_error
    assert _recognizer is not None
    return predict_batch(_recognizer, batch)
