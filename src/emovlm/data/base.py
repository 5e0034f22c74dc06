"""The Dataset protocol, the base class of file-backed adapters, and the registry of adapters."""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
from abc import ABC, abstractmethod
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

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
    streamed: ClassVar[bool] = False
    """True where `_read` is cheap and repeatable: the samples are then read again on each
    `samples()` call instead of kept, so memory does not grow with the annotation file."""

    def __init__(self, root: Path, split: str, fold: int) -> None:
        self.root = Path(root).expanduser()
        self.split = split
        self.fold = fold
        self.skipped: Counter[str] = Counter()
        self._samples: tuple[Sample, ...] = ()
        self._count = 0
        self._options: dict[str, Any] = {}
        if not self.root.exists():
            raise InputError(f"{self.name}: dataset root {self.root} does not exist; check --root")

    def samples(self) -> Iterator[Sample]:
        """Yield the samples of the chosen split in the annotation files' order."""
        yield from self._read() if self.streamed else self._samples

    def __len__(self) -> int:
        """Number of samples in the chosen split."""
        return self._count

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
        return [s for s in self.samples() if not s.media.exists()]

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
        """Check the samples read from `source` (unique ids, media on disk) and count them.

        They are kept unless the adapter is `streamed`; ids are checked through 8-byte hashes,
        so the check holds a few bytes per sample either way.
        """
        self._options = {key: _plain(value) for key, value in options.items()}
        hashes = array("Q")
        kept: list[Sample] = []
        n_missing, first_missing = 0, None
        for sample in samples:
            hashes.append(_id_hash(sample.id))
            if not self.streamed:
                kept.append(sample)
            if not sample.media.exists():
                n_missing += 1
                first_missing = first_missing or sample
        self._samples = tuple(kept)
        self._count = len(hashes)
        _refuse_repeated_ids(hashes, self.samples, source)
        self._report(source, n_missing, first_missing)

    def _report(self, source: Path, n_missing: int, first_missing: Sample | None) -> None:
        for reason, count in sorted(self.skipped.items()):
            logger.warning("%s: skipped %d row(s) of %s: %s", self.name, count, source, reason)
        if first_missing is not None:
            logger.warning(
                "%s: %d of %d samples name media that does not exist (first: %s); they are kept "
                "and will be recorded as failed",
                self.name,
                n_missing,
                self._count,
                first_missing.media,
            )

    @abstractmethod
    def _read(self) -> Iterator[Sample]:
        """Read the annotation files into samples (called by the subclass, through `_load`)."""


def _id_hash(sample_id: str) -> int:
    """A 64-bit hash of a sample id (stable across runs, unlike `hash`)."""
    return int.from_bytes(hashlib.blake2b(sample_id.encode(), digest_size=8).digest(), "little")


def _refuse_repeated_ids(
    hashes: array[int], samples: Callable[[], Iterable[Sample]], source: Path
) -> None:
    """Raise InputError naming the first sample id listed twice (hash matches are checked)."""
    ordered = np.sort(np.frombuffer(hashes, dtype=np.uint64))
    clashing = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    if not clashing:
        return
    seen: set[str] = set()
    for sample in samples():
        if _id_hash(sample.id) in clashing:
            if sample.id in seen:
                raise InputError(
                    f"{source}: sample {sample.id!r} is listed twice; remove the duplicate row"
                )
            seen.add(sample.id)


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


DATASETS: Registry[Dataset] = Registry(
    "dataset",
    "emovlm.data",
    (
        (
            "dfew",
            "dfew:DFEW",
            "",
            "DFEW single-label clips or frame folders, official 5-fold splits (7 classes)",
        ),
        (
            "ferv39k",
            "ferv39k:FERV39k",
            "",
            "FERV39k face-crop clips, official train/test split (7 classes)",
        ),
        ("mafw", "mafw:MAFW", "", "MAFW single-label clips, official 5-fold splits (11 classes)"),
        (
            "emotic",
            "emotic:EMOTIC",
            "",
            "EMOTIC images, one sample per annotated person (26 categories + VAD)",
        ),
        ("folder", "folder:LabelFolders", "", "any images/videos laid out as root/<label>/<file>"),
        (
            "manifest",
            "manifest:Manifest",
            "",
            "a CSV or JSONL list of id, path, label(s) and optional box",
        ),
    ),
)
"""Dataset adapter factories by name; each is called as factory(root, split=, fold=, **options)."""


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
