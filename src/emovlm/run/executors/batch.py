"""One batch of samples → predictions with per-sample failure isolation, and recognizers for workers."""

from __future__ import annotations

import os
import pickle
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from emovlm.errors import (
    BackendError,
    EmovlmError,
    InputError,
    MissingAssetError,
    MissingDependencyError,
)
from emovlm.recognizers.base import Recognizer
from emovlm.run.plain import to_plain
from emovlm.types import Cost, Prediction, Sample

SETUP_ERRORS = (MissingDependencyError, MissingAssetError, BackendError)
"""Errors about the installation, not the sample: they stop the run with their fix instead of
failing every sample in turn."""

RecognizerFactory = Callable[[], Recognizer]
"""A picklable callable that builds a recognizer (in a worker process or a Ray actor)."""


def predict_batch(recognizer: Recognizer, batch: Sequence[Sample]) -> list[Prediction]:
    """Predict a batch; if that raises, predict its samples one by one, recording failures.

    A sample that still raises gets a failed prediction whose reason is "ExceptionType: message"
    (traceback in `extra`). Setup errors and KeyboardInterrupt propagate: they stop the run.
    """
    started = time.perf_counter()
    try:
        return _checked(recognizer, batch, recognizer.predict(batch))
    except SETUP_ERRORS:
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
    except SETUP_ERRORS:
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


@dataclass(frozen=True)
class WorkerRecognizer:
    """How a worker gets its own copy of the run's recognizer, checked to answer the same way.

    A worker calls `factory` when there is one, else unpickles the recognizer the run was started
    with; either way the copy's name and config() must equal the run's, so rows of one
    configuration key never come from another model (say, other weights on another node).
    """

    name: str
    config: Mapping[str, Any]
    factory: RecognizerFactory | None = None
    pickled: bytes | None = None

    def build(self) -> Recognizer:
        """The worker's recognizer; EmovlmError when it cannot be built or differs from the run's."""
        where = f"worker process {os.getpid()} on {socket.gethostname()}"
        try:
            recognizer = self.factory() if self.factory is not None else pickle.loads(self.pickled)
        except EmovlmError:
            raise
        except Exception as exc:
            raise EmovlmError(
                f"cannot build recognizer {self.name!r} in {where} ({type(exc).__name__}: {exc}); "
                "every worker needs emovlm, the recognizer's code and its packages"
            ) from exc
        config = to_plain(recognizer.config(), f"config() of recognizer {recognizer.name!r}")
        if recognizer.name != self.name or config != self.config:
            changed = sorted(
                k for k in set(config) | set(self.config) if config.get(k) != self.config.get(k)
            )
            raise InputError(
                f"the recognizer built in {where} differs from the run's ({recognizer.name!r}, "
                f"settings {', '.join(changed) or 'name'} differ); every worker must see the same "
                "model files, options and packages"
            )
        return recognizer


def worker_recognizer(
    recognizer: Recognizer, factory: RecognizerFactory | None = None
) -> WorkerRecognizer:
    """What workers need to rebuild `recognizer`: its factory, else its pickled self."""
    config = to_plain(recognizer.config(), f"config() of recognizer {recognizer.name!r}")
    if factory is not None:
        return WorkerRecognizer(recognizer.name, config, factory=factory)
    try:
        pickled = pickle.dumps(recognizer)
    except Exception as exc:
        raise InputError(
            f"recognizer {recognizer.name!r} cannot be sent to worker processes "
            f"({type(exc).__name__}: {exc}); pass recognizer_factory= to the executor "
            "(the `emovlm eval` command does), or run without workers"
        ) from None
    return WorkerRecognizer(recognizer.name, config, pickled=pickled)
