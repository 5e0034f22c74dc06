"""Streamed prediction with per-sample failures, and the registry."""

from __future__ import annotations

import itertools
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from emovlm.errors import BackendError, MediaError, MissingAssetError, MissingDependencyError
from emovlm.protocols import Recognizer
from emovlm.registry import Registry
from emovlm.types import Cost, Prediction, Sample

T = TypeVar("T")

SETUP_ERRORS = (MissingDependencyError, MissingAssetError, BackendError)
"""Errors about the installation, not the sample: they stop the run with their fix instead of
failing every sample in turn."""


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
            return [failure(batch[0], exc, started)]
    return [_predict_one(recognizer, sample) for sample in batch]


def stream_predictions(
    recognizer: Recognizer, samples: Iterable[Sample], batch_size: int
) -> Iterator[Prediction]:
    """Predict `samples` in micro-batches of up to `batch_size` with `predict_batch`.

    The default `stream` of recognizers without their own: each prediction is yielded as soon as
    its micro-batch is done, and the next micro-batch is read from `samples` only then.
    """
    iterator = iter(samples)
    while batch := list(itertools.islice(iterator, batch_size)):
        yield from predict_batch(recognizer, batch)


def stream_of(
    recognizer: Recognizer, samples: Iterable[Sample], batch_size: int
) -> Iterator[Prediction]:
    """The recognizer's own `stream` when it has one, else `stream_predictions`."""
    own = getattr(recognizer, "stream", None)
    if own is not None:
        return own(samples)
    return stream_predictions(recognizer, samples, batch_size)


def _predict_one(recognizer: Recognizer, sample: Sample) -> Prediction:
    """Predict one sample, turning an exception into a failed prediction."""
    started = time.perf_counter()
    try:
        return _checked(recognizer, [sample], recognizer.predict([sample]))[0]
    except SETUP_ERRORS:
        raise
    except Exception as exc:
        return failure(sample, exc, started)


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


def failure(sample: Sample, exc: BaseException, started: float) -> Prediction:
    """A failed prediction whose reason is "ExceptionType: message", keeping the traceback."""
    return replace(
        Prediction.failed(
            sample.id,
            f"{type(exc).__name__}: {exc}",
            Cost(seconds=time.perf_counter() - started),
        ),
        extra={"traceback": "".join(traceback.format_exception(exc))},
    )


def predict_in_chunks(
    samples: Sequence[Sample],
    size: int,
    predict_chunk: Callable[[Sequence[Sample]], list[Prediction]],
) -> list[Prediction]:
    """Predict `samples` `size` at a time with `predict_chunk`, keeping their order."""
    predictions: list[Prediction] = []
    for start in range(0, len(samples), size):
        predictions.extend(predict_chunk(samples[start : start + size]))
    return predictions


def prepare_each(
    samples: Sequence[Sample], prepare: Callable[[Sample], T]
) -> tuple[dict[int, Prediction], list[tuple[int, T]]]:
    """Run `prepare` on each sample; media that cannot be read become failed predictions.

    Returns the failures and the prepared items, both keyed by the sample's position.
    """
    failed: dict[int, Prediction] = {}
    prepared: list[tuple[int, T]] = []
    for i, sample in enumerate(samples):
        started = time.perf_counter()
        try:
            prepared.append((i, prepare(sample)))
        except MediaError as exc:
            failed[i] = Prediction.failed(
                sample.id, str(exc), Cost(seconds=time.perf_counter() - started)
            )
    return failed, prepared


def model_config(backend: str, model: str, vlm: Any) -> dict[str, Any]:
    """The model entries of a config: backend, model name and the model's fingerprint."""
    return {"backend": backend, "model": model, "model_fingerprint": dict(vlm.fingerprint())}


RECOGNIZERS: Registry[Recognizer] = Registry("recognizer")
"""Recognizer factories by name; each is called as factory(label_space, settings) (settings: the
class `recognizers.settings.RECOGNIZER_SETTINGS` names) or factory(label_space, **settings)."""

for _name, _target, _needs, _help in (
    (
        "specialist",
        "specialist:SpecialistRecognizer",
        "",
        "offline vision-only expression model over detected faces (default; no VLM needed)",
    ),
    (
        "vlm",
        "vlm:VLMRecognizer",
        "vlm",
        "ask a vision-language model (local transformers or an OpenAI-compatible server)",
    ),
    (
        "contextual-vlm",
        "vlm:ContextualVLMRecognizer",
        "vlm",
        "the vlm recognizer on people in context (EMOTIC): red box, crop or both",
    ),
    (
        "msce",
        "msce:MSCERecognizer",
        "vlm",
        "multi-stage context enrichment: in-between frames described in text, keyframes to a VLM",
    ),
    (
        "caption-llm",
        "caption_llm:CaptionLLMRecognizer",
        "vlm",
        "a VLM describes the person in context, a text LLM picks the labels",
    ),
    (
        "narracap-llm",
        "narracap:NarraCapRecognizer",
        "vlm",
        "NarraCap captions from zero-shot CLIP vocabularies, a text LLM picks the labels",
    ),
    (
        "majority",
        "baselines:MajorityRecognizer",
        "",
        "baseline: always the k most frequent labels of the training split",
    ),
    (
        "random",
        "baselines:RandomRecognizer",
        "",
        "baseline: k labels drawn uniformly at random (seeded)",
    ),
    (
        "weighted-random",
        "baselines:WeightedRandomRecognizer",
        "",
        "baseline: k labels drawn by training-split frequency (seeded)",
    ),
):
    RECOGNIZERS.add(_name, f"emovlm.recognizers.{_target}", needs=_needs, help=_help)
