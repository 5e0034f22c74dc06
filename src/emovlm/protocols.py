"""The contracts the layers meet at: what a recognizer is, for code below the recognizers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from emovlm.labels import LabelSpace
from emovlm.types import Prediction, Sample


class Recognizer(Protocol):
    """Turns samples into predictions in one label space.

    `predict` returns one Prediction per sample, in order; a sample whose media cannot be read
    gives a failed Prediction with the reason instead of raising. A recognizer may also have
    `stream(samples) -> Iterator[Prediction]`, yielding each prediction as soon as it is done
    (in any order; `sample_id` says whose); `stream_of` picks it, else feeds `predict`
    micro-batches. An optional `run_stats() -> Mapping` reports how the run went (recorded with
    the run's configuration and shown in the report).
    """

    name: str
    label_space: LabelSpace

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """Predict a batch of samples."""
        ...

    def config(self) -> Mapping[str, Any]:
        """The settings that determine this recognizer's answers (stored with each run)."""
        ...
