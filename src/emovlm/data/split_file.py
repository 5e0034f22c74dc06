"""The shared shape of DFEW, FERV39k and MAFW: one split file per (split, fold) and a media folder."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from emovlm.data.base import AnnotatedDataset
from emovlm.data.paths import locate_dir, locate_file
from emovlm.labels import get_label_space
from emovlm.types import Sample


class SplitFileDataset(AnnotatedDataset):
    """A clip dataset read from its official split file, with media found under the root.

    Subclasses name the split-file templates (`{split}`, `{fold}`), the media folders to try,
    the number of folds and a title for messages, and implement `_read`.
    """

    split_files: ClassVar[tuple[str, ...]]
    media_dirs: ClassVar[tuple[str, ...]]
    folds: ClassVar[int]
    title: ClassVar[str]
    media_what: ClassVar[str] = "media folder"

    def __init__(
        self,
        root: Path,
        split: str = "test",
        fold: int = 1,
        *,
        labels_file: str | Path | None = None,
        media_dir: str | Path | None = None,
    ) -> None:
        super().__init__(root, split, fold)
        self.label_space = get_label_space(self.name)
        self._check_split(("train", "test"))
        self._check_fold(self.folds)
        of_fold = f" of fold {self.fold}" if self.folds > 1 else ""
        self.labels_file = locate_file(
            self.root,
            labels_file,
            [f.format(split=self.split, fold=self.fold) for f in self.split_files],
            what=f"{self.title} {self.split} split file{of_fold}",
            option="labels_file",
        )
        self.media_dir = locate_dir(
            self.root,
            media_dir,
            self.media_dirs,
            what=f"{self.title} {self.media_what}",
            option="media_dir",
        )
        self._load(
            self._read(),
            self.labels_file,
            {"labels_file": self.labels_file, "media_dir": self.media_dir},
        )

    @abstractmethod
    def _read(self) -> Iterator[Sample]:
        """The split file's samples, in file order."""
