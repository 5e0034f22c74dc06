"""Executors: how a run's samples become predictions, handed to the run's writer as they finish.

`local` predicts in this process (through the recognizer's `stream`, so a served model keeps a
window of requests in flight) or in worker processes; `ray` predicts on a pool of Ray actors.
Every executor reads the samples lazily, keeps a bounded number of them in flight, and yields
(sample, prediction) as each prediction is done, in completion order, not input order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from emovlm.errors import InputError
from emovlm.recognizers.base import Recognizer
from emovlm.run.executors.batch import RecognizerFactory
from emovlm.types import Prediction, Sample

EXECUTORS = ("local", "ray")
"""Names accepted by `make_executor` and `emovlm eval --executor`."""


class Executor(Protocol):
    """Turns a stream of samples into predictions, yielded as they finish.

    `stream` reads `samples` only as room frees up in its bounded window, hands local models
    micro-batches of up to `batch_size`, turns per-sample problems into failed predictions and
    raises only what stops the run (setup errors, a dead worker, KeyboardInterrupt). Closing the
    returned iterator cancels the work in flight.
    """

    name: str

    def stream(
        self, recognizer: Recognizer, samples: Iterable[Sample], batch_size: int
    ) -> Iterator[tuple[Sample, Prediction]]:
        """Predict each sample; yield (sample, prediction) in the order they finish."""
        ...


def with_samples(
    samples: Iterable[Sample], predict: Callable[[Iterable[Sample]], Iterator[Prediction]]
) -> Iterator[tuple[Sample, Prediction]]:
    """Run `predict` over `samples`, pairing each prediction with its sample (held while in flight).

    A prediction for a sample not in flight, or samples left without one, is a recognizer bug:
    ValueError naming them.
    """
    pending: dict[str, Sample] = {}

    def feed() -> Iterator[Sample]:
        for sample in samples:
            pending[sample.id] = sample
            yield sample

    predictions = predict(feed())
    try:
        for prediction in predictions:
            sample = pending.pop(getattr(prediction, "sample_id", None), None)  # type: ignore[arg-type]
            if sample is None:
                raise ValueError(
                    f"a prediction for sample {getattr(prediction, 'sample_id', None)!r} came "
                    "back that was not asked for or was already answered"
                )
            yield sample, prediction
    finally:
        close = getattr(predictions, "close", None)
        if close is not None:
            close()
    if pending:
        raise ValueError(
            f"the recognizer's stream ended with {len(pending)} samples unanswered "
            f"(the first: {next(iter(pending))})"
        )


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
