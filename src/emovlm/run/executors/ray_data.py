"""The Ray executor: a bounded window of micro-batches on a pool of Ray actors holding the models."""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from emovlm.errors import EmovlmError, InputError, MissingDependencyError
from emovlm.recognizers.base import Recognizer, predict_batch
from emovlm.run.executors.batch import RecognizerFactory, WorkerRecognizer, worker_recognizer
from emovlm.types import Prediction, Sample

IN_FLIGHT_PER_ACTOR = 2
"""Micro-batches sent to each actor at a time: one predicting, one waiting in its queue."""


class RayExecutor:
    """Predict on a Ray cluster (or a local Ray started for the run) with a pool of actors.

    `workers` actors each build the recognizer once; the driver reads the run's samples lazily,
    keeps at most IN_FLIGHT_PER_ACTOR micro-batches of `batch_size` per actor in flight (so the
    object store holds a bounded window, not every pending batch), and yields each micro-batch's
    predictions as soon as it is done to the driver's one writer. `address` is a Ray address
    (e.g. "auto" or "10.0.0.1:6379"); without one, an already connected Ray is used, else a local
    one is started and stopped with the run. `workers` defaults to one actor per CPU (or per
    `gpus_per_worker` GPUs) of the cluster.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_worker: float = 0.0,
        recognizer_factory: RecognizerFactory | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise InputError(f"--workers must be at least 1, got {workers}")
        if gpus_per_worker < 0:
            raise InputError(f"--ray-gpus-per-worker must be 0 or more, got {gpus_per_worker}")
        self.address = address
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker
        self.recognizer_factory = recognizer_factory

    def stream(
        self, recognizer: Recognizer, samples: Iterable[Sample], batch_size: int
    ) -> Iterator[tuple[Sample, Prediction]]:
        """Predict each sample on the cluster; yield (sample, prediction) as each micro-batch ends."""
        ray = _import_ray()
        started_here = self._connect(ray)
        actors: list[Any] = []
        try:
            worker = worker_recognizer(recognizer, self.recognizer_factory)
            remote = ray.remote(num_cpus=1, num_gpus=self.gpus_per_worker or None)(_RayPredictor)
            actors = [remote.remote(worker) for _ in range(self._pool_size(ray))]
            yield from _window(ray, actors, iter(samples), batch_size)
        finally:
            for actor in actors:
                ray.kill(actor)
            if started_here:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Connect to the cluster unless this process already is; True when Ray started here."""
        if ray.is_initialized():
            return False
        # a Ray started here runs on this machine: its workers import what this process can
        runtime_env = (
            {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
            if self.address is None
            else None
        )
        try:
            ray.init(
                address=self.address,
                include_dashboard=False,
                logging_level=logging.WARNING,
                runtime_env=runtime_env,
            )
        except ConnectionError as exc:
            raise InputError(
                f"cannot connect to a Ray cluster at --ray-address {self.address} ({exc}); "
                "start one with `ray start --head` or fix the address"
            ) from None
        return True

    def _pool_size(self, ray: Any) -> int:
        """The number of actors: --workers, else one per CPU (or per GPU share) of the cluster."""
        if self.workers is not None:
            return self.workers
        resources = ray.cluster_resources()
        if self.gpus_per_worker:
            return max(1, int(resources.get("GPU", 0) // self.gpus_per_worker))
        return max(1, int(resources.get("CPU", 1)))


def _window(
    ray: Any, actors: list[Any], samples: Iterator[Sample], batch_size: int
) -> Iterator[tuple[Sample, Prediction]]:
    """Keep every actor busy with up to IN_FLIGHT_PER_ACTOR micro-batches; yield as they finish.

    An error that stops the run is raised once the micro-batches in flight have come back.
    """
    free = [actor for actor in actors for _ in range(IN_FLIGHT_PER_ACTOR)]
    in_flight: dict[Any, tuple[Any, list[Sample]]] = {}
    stop: BaseException | None = None
    while True:
        while stop is None and free and (batch := list(itertools.islice(samples, batch_size))):
            actor = free.pop()
            in_flight[actor.predict.remote(batch)] = (actor, batch)
        if not in_flight:
            break
        (ref,), _ = ray.wait(list(in_flight), num_returns=1)
        actor, batch = in_flight.pop(ref)
        free.append(actor)
        try:
            predictions = _predictions(ray, ref, batch)
        except Exception as exc:
            stop = stop or exc
            continue
        yield from zip(batch, predictions, strict=True)
    if stop is not None:
        raise stop


class _RayPredictor:
    """A Ray actor: builds the recognizer once, then predicts one micro-batch per call.

    Errors that stop the run (the recognizer cannot be built, a setup error while predicting)
    come back pickled instead of raised, so the driver re-raises the original error with its
    message rather than Ray's wrapper of it.
    """

    def __init__(self, worker: WorkerRecognizer) -> None:
        self.recognizer: Recognizer | None = None
        self.error: bytes | None = None
        try:
            self.recognizer = worker.build()
        except Exception as exc:
            self.error = _pickled_error(exc)

    def predict(self, samples: list[Sample]) -> tuple[list[Prediction], bytes | None]:
        """The micro-batch's predictions, or the pickled error that stops the run."""
        if self.error is not None or self.recognizer is None:
            return [], self.error
        try:
            return predict_batch(self.recognizer, samples), None
        except Exception as exc:
            return [], _pickled_error(exc)


def _predictions(ray: Any, ref: Any, batch: list[Sample]) -> list[Prediction]:
    """The predictions of one finished micro-batch, re-raising an error that stops the run."""
    try:
        predictions, error = ray.get(ref)
    except ray.exceptions.RayActorError:
        raise EmovlmError(
            f"a Ray actor died while predicting samples {batch[0].id} to {batch[-1].id} "
            "(killed, out of memory, or a crash in native code); the rows written so far are "
            "kept: rerun with --resume"
        ) from None
    if error is not None:
        raise pickle.loads(error)
    return predictions


def _pickled_error(exc: Exception) -> bytes:
    """An exception pickled for the driver; one that does not pickle becomes an EmovlmError."""
    try:
        return pickle.dumps(exc)
    except Exception:
        return pickle.dumps(EmovlmError(f"{type(exc).__name__}: {exc}"))


def _import_ray() -> Any:
    """The ray package, or MissingDependencyError naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(
            f"--executor ray needs Ray ({exc.name} is not installed); "
            "run: pip install 'emovlm[ray]'"
        ) from None
    return ray
