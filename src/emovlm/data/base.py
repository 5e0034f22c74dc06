"""The Dataset protocol, the base class of file-backed adapters, and the registry of adapters."""

from __future__ import annotations

import inspect
import logging
import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from emovlm.errors import InputError
from emovlm.labels import LabelSpace
from emovlm.registry import Registry
from emovlm.types import Sample

logger = logging.getLogger(__name__)


class Dataset(Protocol):
    """A source of Samples in one label space."""

    name: str
    label_space: LabelSpace

    def samples(self) -> Iterator[Sample]:
        """Yield the samples of the chosen split, in a stable order."""
        ...

    def config(self) -> Mapping[str, Any]:
        """The JSON-able settings that identify this dataset: name, root, split, fold, options."""
        ...

    def missing_media(self) -> list[Sample]:
        """Samples whose media path does not exist on disk (kept; they fail at run time)."""
        ...


class AnnotatedDataset(ABC):
    """A dataset read up-front from its annotation files: paths and gold labels, never pixels.

    Subclasses check their options, then call `_load` with the samples they read; rows they
    drop on purpose (such as DFEW's label 0) are counted in `skipped` by reason.
    """

    name: ClassVar[str]
    label_space: LabelSpace

    def __init__(self, root: Path, split: str, fold: int) -> None:
        self.root = Path(root).expanduser()
        self.split = split
        self.fold = fold
        self.skipped: Counter[str] = Counter()
        self._samples: tuple[Sample, ...] = ()
        self._missing: tuple[Sample, ...] = ()
        self._options: dict[str, Any] = {}
        if not self.root.exists():
            raise InputError(f"{self.name}: dataset root {self.root} does not exist; check --root")

    def samples(self) -> Iterator[Sample]:
        """Yield the samples of the chosen split in the annotation files' order."""
        yield from self._samples

    def __len__(self) -> int:
        """Number of samples in the chosen split."""
        return len(self._samples)

    def config(self) -> dict[str, Any]:
        """The JSON-able settings that identify this dataset: name, root, split, fold, options."""
        return {
            "name": self.name,
            "root": os.path.abspath(self.root),
            "split": self.split,
            "fold": self.fold,
            "options": dict(self._options),
        }

    def missing_media(self) -> list[Sample]:
        """Samples whose media path does not exist on disk (kept; they fail at run time)."""
        return list(self._missing)

    def _check_split(self, allowed: Sequence[str]) -> None:
        if self.split not in allowed:
            raise InputError(
                f"{self.name} has no split {self.split!r}; "
                f"choose --split from: {', '.join(allowed)}"
            )

    def _check_fold(self, folds: int) -> None:
        fold = _as_int(self.fold, "fold")
        if folds == 1 and fold != 1:
            raise InputError(f"{self.name} has no folds; leave --fold at 1 (got {fold})")
        if not 1 <= fold <= folds:
            raise InputError(f"{self.name} has folds 1-{folds}; got --fold {fold}")
        self.fold = fold

    def _load(self, samples: Iterable[Sample], source: Path, options: Mapping[str, Any]) -> None:
        """Keep the samples read from `source`, refuse duplicate ids, report missing media."""
        self._options = {key: _plain(value) for key, value in options.items()}
        seen: set[str] = set()
        kept: list[Sample] = []
        for sample in samples:
            if sample.id in seen:
                raise InputError(
                    f"{source}: sample {sample.id!r} is listed twice; remove the duplicate row"
                )
            seen.add(sample.id)
            kept.append(sample)
        self._samples = tuple(kept)
        self._missing = tuple(s for s in kept if not s.media.exists())
        self._report(source)

    def _report(self, source: Path) -> None:
        for reason, count in sorted(self.skipped.items()):
            logger.warning("%s: skipped %d row(s) of %s: %s", self.name, count, source, reason)
        if self._missing:
            logger.warning(
                "%s: %d of %d samples name media that does not exist (first: %s); they are kept "
                "and will be recorded as failed",
                self.name,
                len(self._missing),
                len(self._samples),
                self._missing[0].media,
            )

    @abstractmethod
    def _read(self) -> Iterator[Sample]:
        """Read the annotation files into samples (called by the subclass, through `_load`)."""


def as_bool(value: object, option: str) -> bool:
    """Read an on/off option given as a bool or as text (true/false, yes/no, 1/0)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "yes", "1", "on"}:
        return True
    if text in {"false", "no", "0", "off"}:
        return False
    raise InputError(f"option {option}={value!r} must be true or false")


def _as_int(value: object, option: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise InputError(f"option {option}={value!r} must be a whole number") from None


def _plain(value: Any) -> Any:
    """Options as JSON-able values: paths become absolute strings."""
    if isinstance(value, Path):
        return os.path.abspath(value)
    return value


DATASETS: Registry[Dataset] = Registry("dataset")
"""Dataset adapter factories by name; each is called as factory(root, split=, fold=, **options)."""

DATASETS.add(
    "dfew",
    "emovlm.data.dfew:DFEW",
    help="DFEW single-label clips or frame folders, official 5-fold splits (7 classes)",
)
DATASETS.add(
    "ferv39k",
    "emovlm.data.ferv39k:FERV39k",
    help="FERV39k face-crop clips, official train/test split (7 classes)",
)
DATASETS.add(
    "mafw",
    "emovlm.data.mafw:MAFW",
    help="MAFW single-label clips, official 5-fold splits (11 classes)",
)
DATASETS.add(
    "emotic",
    "emovlm.data.emotic:EMOTIC",
    help="EMOTIC images, one sample per annotated person (26 categories + VAD)",
)
DATASETS.add(
    "folder",
    "emovlm.data.folder:LabelFolders",
    help="any images/videos laid out as root/<label>/<file>",
)
DATASETS.add(
    "manifest",
    "emovlm.data.manifest:Manifest",
    help="a CSV or JSONL list of id, path, label(s) and optional box",
)


def open_dataset(name: str, root: Path | str, **options: Any) -> Dataset:
    """Open the adapter `name` on `root` (split=, fold= and adapter options as keywords)."""
    root_path = Path(root).expanduser()
    if not root_path.exists():
        raise InputError(f"dataset root {root_path} does not exist; check --root")
    factory = DATASETS.get(name)
    try:
        inspect.signature(factory).bind(root_path, **options)
    except TypeError:
        accepted = [p for p in inspect.signature(factory).parameters if p != "root"]
        unknown = sorted(set(options) - set(accepted))
        raise InputError(
            f"dataset {name!r} does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted)}"
        ) from None
    return factory(root_path, **options)
