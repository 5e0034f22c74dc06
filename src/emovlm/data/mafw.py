"""MAFW: single-label clips with the official 5-fold split files (11 classes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePath

from emovlm.data.paths import index_media
from emovlm.data.split_file import SplitFileDataset
from emovlm.errors import InputError
from emovlm.types import Sample

SPLIT_FILES = (
    "Train & Test Set/single/no_caption/set_{fold}/{split}.txt",  # the dataset release
    "split/single/no_caption/set_{fold}/{split}.txt",  # MAE-DFER's renamed copy
)
MEDIA_DIRS = ("data/clips", "data/frames", "data/faces")


class MAFW(SplitFileDataset):
    """MAFW split `train`/`test` of fold 1-5; rows such as `00025.mp4 anger`."""

    name = "mafw"

    split_files = SPLIT_FILES
    media_dirs = MEDIA_DIRS
    folds = 5
    title = "MAFW"

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
