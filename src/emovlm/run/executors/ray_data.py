"""The Ray executor: batches go through Ray Data `map_batches` on actor pools holding the models."""

from __future__ import annotations

import logging
import os
import pickle
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from emovlm.errors import EmovlmError, InputError, MissingDependencyError
from emovlm.recognizers.base import Recognizer
from emovlm.run.executors.batch import (
    RecognizerFactory,
    WorkerRecognizer,
    predict_batch,
    worker_recognizer,
)
from emovlm.types import Prediction, Sample


class RayExecutor:
    """Predict batches on a Ray cluster (or a local Ray started for the run) with Ray Data.

    The run's pending batches are put into Ray's object store one block per batch (the driver
    keeps only their references), streamed through `map_batches` on a pool of `workers` actors
    that each build the recognizer once, and come back in input order to the driver, whose one
    writer commits them to the run store. `address` is a Ray address (e.g. "auto" or
    "10.0.0.1:6379"); without one, an already connected Ray is used, else a local one is
    started and stopped with the run. `workers` defaults to one actor per CPU (or per
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

    def map(
        self, recognizer: Recognizer, batches: Iterable[list[Sample]]
    ) -> Iterator[tuple[list[Sample], list[Prediction]]]:
        """Predict each batch on the cluster; yield (batch, predictions) in input order."""
        ray = _import_ray()
        started_here = self._connect(ray)
        data_logger = logging.getLogger("ray.data")
        data_log_level = data_logger.level
        data_logger.setLevel(logging.ERROR)  # the runner shows progress; Ray Data's is noise
        try:
            worker = worker_recognizer(recognizer, self.recognizer_factory)
            blocks, largest = [], 0
            for batch in batches:
                blocks.append(ray.put(_sample_table(batch)))
                largest = max(largest, len(batch))
            if not blocks:
                return
            dataset = ray.data.from_arrow_refs(blocks).map_batches(
                _RayPredictor,
                fn_constructor_args=(worker,),
                batch_size=largest,  # blocks are the run's batches: one block per call
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=self._pool_size(ray)),
                num_cpus=1,
                num_gpus=self.gpus_per_worker or None,
            )
            del blocks
            dataset.context.execution_options.preserve_order = True
            dataset.context.enable_progress_bars = False
            for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                yield _predictions(table)
        finally:
            data_logger.setLevel(data_log_level)
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


class _RayPredictor:
    """A Ray Data actor: builds the recognizer once, then predicts one batch (block) per call.

    Errors that stop the run (the recognizer cannot be built, a setup error while predicting)
    travel back in the `error` column instead of being raised, so the driver re-raises the
    original error with its message rather than Ray's wrapper of it.
    """

    def __init__(self, worker: WorkerRecognizer) -> None:
        self.recognizer: Recognizer | None = None
        self.error: bytes | None = None
        try:
            self.recognizer = worker.build()
        except Exception as exc:
            self.error = _pickled_error(exc)

    def __call__(self, table: Any) -> Any:
        """Predictions of one batch as a table of pickled samples, predictions and error."""
        import pyarrow as pa

        samples = [pickle.loads(b) for b in table.column("sample").to_pylist()]
        predictions: list[bytes | None] = [None] * len(samples)
        error = self.error
        if error is None and self.recognizer is not None:
            try:
                predictions = [pickle.dumps(p) for p in predict_batch(self.recognizer, samples)]
            except Exception as exc:
                error = _pickled_error(exc)
        return pa.table(
            {
                "sample": table.column("sample"),
                "prediction": pa.array(predictions, pa.binary()),
                "error": pa.array([error] * len(samples), pa.binary()),
            }
        )


def _sample_table(batch: list[Sample]) -> Any:
    """One batch as an Arrow table of pickled samples (one object-store block)."""
    import pyarrow as pa

    return pa.table({"sample": pa.array([pickle.dumps(s) for s in batch], pa.binary())})


def _predictions(table: Any) -> tuple[list[Sample], list[Prediction]]:
    """The samples and predictions of one finished block, re-raising an error that stops the run."""
    errors = table.column("error").to_pylist()
    if errors and errors[0] is not None:
        raise pickle.loads(errors[0])
    samples = [pickle.loads(b) for b in table.column("sample").to_pylist()]
    predictions = [pickle.loads(b) for b in table.column("prediction").to_pylist()]
    return samples, predictions


def _pickled_error(exc: Exception) -> bytes:
    """An exception pickled for the driver; one that does not pickle becomes an EmovlmError."""
    try:
        return pickle.dumps(exc)
    except Exception:
        return pickle.dumps(EmovlmError(f"{type(exc).__name__}: {exc}"))


def _import_ray() -> Any:
    """The ray package with Ray Data, or MissingDependencyError naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"--executor ray needs Ray Data ({exc.name} is not installed); "
            "run: pip install 'emovlm[ray]'"
        ) from None
    return ray
