"""Executors: how a run's batches become predictions, handed back in order to the run's writer.

`local` predicts in this process or in worker processes; `ray` predicts on Ray Data actor
pools. Every executor yields (batch, predictions) in the order the batches came, so the
runner's single writer stores rows in dataset order whatever ran them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from emovlm.errors import InputError
from emovlm.recognizers.base import Recognizer
from emovlm.run.executors.batch import RecognizerFactory
from emovlm.types import Prediction, Sample

EXECUTORS = ("local", "ray")
"""Names accepted by `make_executor` and `emovlm eval --executor`."""


class Executor(Protocol):
    """Turns a stream of sample batches into predictions, yielded in input order."""

    name: str

    def map(
        self, recognizer: Recognizer, batches: Iterable[list[Sample]]
    ) -> Iterator[tuple[list[Sample], list[Prediction]]]:
        """Predict each batch; yield (samples, predictions) groups in input order."""
        ...


def make_executor(
    kind: str,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    gpus_per_worker: float = 0.0,
    recognizer_factory: RecognizerFactory | None = None,
) -> Executor:
    """The executor named `kind` ("local" or "ray") with its settings; wrong combinations refused."""
    if kind == "local":
        if ray_address or gpus_per_worker:
            raise InputError("--ray-address and --ray-gpus-per-worker apply to --executor ray only")
        from emovlm.run.executors.local import LocalExecutor

        return LocalExecutor(workers, recognizer_factory)
    if kind == "ray":
        from emovlm.run.executors.ray_data import RayExecutor

        return RayExecutor(ray_address, workers, gpus_per_worker, recognizer_factory)
    raise InputError(f"unknown --executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
