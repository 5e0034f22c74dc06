"""The Dataset protocol and the registry of dataset adapters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from emovlm.labels import LabelSpace
from emovlm.registry import Registry
from emovlm.types import Sample


class Dataset(Protocol):
    """A source of Samples in one label space."""

    name: str
    label_space: LabelSpace

    def samples(self) -> Iterator[Sample]:
        """Yield the samples of the chosen split, in a stable order."""
        ...


DATASETS: Registry[Dataset] = Registry("dataset")
"""Dataset adapter factories by name; each is called as factory(root, **options)."""
