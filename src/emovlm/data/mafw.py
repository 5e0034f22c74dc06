"""MAFW: single-label clips with the official 5-fold split files (11 classes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePath

from emovlm.data.base import AnnotatedDataset
from emovlm.data.paths import index_media, locate_dir, locate_file
from emovlm.errors import InputError
from emovlm.labels import get_label_space
from emovlm.types import Sample

SPLIT_FILES = (
    "Train & Test Set/single/no_caption/set_{fold}/{split}.txt",  # the dataset release
    "split/single/no_caption/set_{fold}/{split}.txt",  # MAE-DFER's renamed copy
)
MEDIA_DIRS = ("data/clips", "data/frames", "data/faces")


class MAFW(AnnotatedDataset):
    """MAFW split `train`/`test` of fold 1-5; rows such as `00025.mp4 anger`."""

    name = "mafw"

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
        self.label_space = get_label_space("mafw")
        self._check_split(("train", "test"))
        self._check_fold(5)
        candidates = [f.format(split=self.split, fold=self.fold) for f in SPLIT_FILES]
        self.labels_file = locate_file(
            self.root,
            labels_file,
            candidates,
            what=f"MAFW {self.split} split file of fold {self.fold}",
            option="labels_file",
        )
        self.media_dir = locate_dir(
            self.root, media_dir, MEDIA_DIRS, what="MAFW media folder", option="media_dir"
        )
        self._load(
            self._read(),
            self.labels_file,
            {"labels_file": self.labels_file, "media_dir": self.media_dir},
        )

    def _read(self) -> Iterator[Sample]:
        media = index_media(self.media_dir, lambda stem: stem)
        lines = self.labels_file.read_text(encoding="utf-8-sig").splitlines()
        for number, text in enumerate(lines, start=1):
            fields = text.split()
            if not fields:
                continue
            label = self.label_space.normalize(fields[1]) if len(fields) >= 2 else None
            if label is None:
                raise InputError(
                    f"{self.labels_file} line {number}: expected '<clip file> <emotion>' with an "
                    f"emotion among {', '.join(self.label_space.labels)}, got {text.strip()!r}"
                )
            clip_id = PurePath(fields[0]).stem
            yield Sample(
                id=clip_id,
                media=media.get(clip_id, self.media_dir / fields[0]),
                labels=(label,),
                meta={"file": fields[0], "split": self.split, "fold": self.fold},
            )
