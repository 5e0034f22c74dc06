"""The Recognizer protocol and the registry of recognizers."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from emovlm.errors import MediaError
from emovlm.labels import LabelSpace
from emovlm.registry import Registry
from emovlm.types import Cost, Prediction, Sample

T = TypeVar("T")


class Recognizer(Protocol):
    """Turns samples into predictions in one label space.

    `predict` returns one Prediction per sample, in order; a sample whose media cannot be read
    gives a failed Prediction with the reason instead of raising.
    """

    name: str
    label_space: LabelSpace

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """Predict a batch of samples."""
        ...

    def config(self) -> Mapping[str, Any]:
        """The settings that determine this recognizer's answers (stored with each run)."""
        ...


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


RECOGNIZERS: Registry[Recognizer] = Registry("recognizer")
"""Recognizer factories by name; each is called as factory(label_space, **options)."""

RECOGNIZERS.add(
    "specialist",
    "emovlm.recognizers.specialist:SpecialistRecognizer",
    help="offline vision-only expression model over detected faces (default; no VLM needed)",
)
RECOGNIZERS.add(
    "vlm",
    "emovlm.recognizers.vlm:VLMRecognizer",
    needs="vlm",
    help="ask a vision-language model (local transformers or an OpenAI-compatible server)",
)
RECOGNIZERS.add(
    "contextual-vlm",
    "emovlm.recognizers.vlm:VLMRecognizer",
    needs="vlm",
    help="the vlm recognizer on people in context (EMOTIC): red box, crop or both",
)
RECOGNIZERS.add(
    "msce",
    "emovlm.recognizers.msce:MSCERecognizer",
    needs="vlm",
    help="multi-stage context enrichment: in-between frames described in text, keyframes to a VLM",
)
RECOGNIZERS.add(
    "caption-llm",
    "emovlm.recognizers.caption_llm:CaptionLLMRecognizer",
    needs="vlm",
    help="a VLM describes the person in context, a text LLM picks the labels",
)
RECOGNIZERS.add(
    "narracap-llm",
    "emovlm.recognizers.narracap:NarraCapRecognizer",
    needs="vlm",
    help="NarraCap captions from zero-shot CLIP vocabularies, a text LLM picks the labels",
)
RECOGNIZERS.add(
    "majority",
    "emovlm.recognizers.baselines:MajorityRecognizer",
    help="baseline: always the k most frequent labels of the training split",
)
RECOGNIZERS.add(
    "random",
    "emovlm.recognizers.baselines:RandomRecognizer",
    help="baseline: k labels drawn uniformly at random (seeded)",
)
RECOGNIZERS.add(
    "weighted-random",
    "emovlm.recognizers.baselines:WeightedRandomRecognizer",
    help="baseline: k labels drawn by training-split frequency (seeded)",
)
