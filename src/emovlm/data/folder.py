"""A plain folder of labelled media: root/<label>/<file> (or root/<split>/<label>/<file>)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from emovlm.data.base import AnnotatedDataset
from emovlm.data.paths import MEDIA_SUFFIXES
from emovlm.errors import InputError
from emovlm.labels import LABEL_SPACES, get_label_space
from emovlm.types import Sample

SPLIT_FOLDERS = ("train", "val", "valid", "validation", "dev", "test")


class LabelFolders(AnnotatedDataset):
    """Each image, video or frame folder inside root/<label>/ is one sample of that label.

    Label folder names are read with the label set's synonyms and any case ("Happy", "anger").
    When root holds split folders (train/, test/, ...), the one named by `split` is used.
    """

    name = "folder"

    def __init__(
        self, root: Path, split: str = "test", fold: int = 1, *, label_set: str = "fer2013"
    ) -> None:
        super().__init__(root, split, fold)
        self.label_space = get_label_space(label_set)
        self._check_fold(1)
        if not self.root.is_dir():
            raise InputError(
                f"folder dataset root {self.root} is not a folder; lay media out as "
                "root/<label>/<file>"
            )
        self.base = self._split_folder()
        self._load(self._read(), self.base, {"label_set": self.label_space.name})
        if not len(self):
            raise InputError(
                f"no images or videos found in the label folders of {self.base}; "
                "lay media out as root/<label>/<file>"
            )

    def _split_folder(self) -> Path:
        splits = {p.name.lower(): p for p in _folders(self.root) if p.name.lower() in SPLIT_FOLDERS}
        if not splits:
            return self.root
        if self.split.lower() not in splits:
            raise InputError(
                f"{self.root} has split folders {', '.join(sorted(splits))} but no "
                f"{self.split!r}; choose --split from them"
            )
        return splits[self.split.lower()]

    def _read(self) -> Iterator[Sample]:
        for label_folder in _folders(self.base):
            label = self.label_space.normalize(label_folder.name)
            if label is None:
                raise InputError(
                    f"{label_folder}: folder name {label_folder.name!r} is not a label of "
                    f"{self.label_space.name} ({', '.join(self.label_space.labels)}); rename the "
                    f"folder, or choose another label set with label_set= "
                    f"(one of: {', '.join(LABEL_SPACES)})"
                )
            for entry in sorted(label_folder.iterdir(), key=lambda p: p.name):
                if entry.name.startswith("."):
                    continue
                if entry.is_dir() or entry.suffix.lower() in MEDIA_SUFFIXES:
                    yield Sample(
                        id=f"{label_folder.name}/{entry.name}",
                        media=entry,
                        labels=(label,),
                        meta={"folder": label_folder.name},
                    )
                else:
                    self.skipped["not an image, video or frame folder"] += 1


def _folders(parent: Path) -> list[Path]:
    return sorted(
        (p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
