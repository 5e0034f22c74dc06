"""The Recognizer protocol and the registry of recognizers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from emovlm.labels import LabelSpace
from emovlm.registry import Registry
from emovlm.types import Prediction, Sample


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
