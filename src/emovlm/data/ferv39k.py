"""FERV39k: face-crop frame folders with the official All_scenes train/test split files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from emovlm.data.base import AnnotatedDataset
from emovlm.data.paths import locate_dir, locate_file
from emovlm.errors import InputError
from emovlm.labels import get_label_space
from emovlm.types import Sample

SPLIT_FILES = ("4_setups/All_scenes/{split}_All.csv",)
MEDIA_DIRS = ("2_ClipsforFaceCrop",)
_FIELDS = re.compile(r"[,\s]+")


class FERV39k(AnnotatedDataset):
    """FERV39k split `train`/`test` (no folds); rows such as `Action/Happy/0015 Happy`."""

    name = "ferv39k"

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
        self.label_space = get_label_space("ferv39k")
        self._check_split(("train", "test"))
        self._check_fold(1)
        self.labels_file = locate_file(
            self.root,
            labels_file,
            [f.format(split=self.split) for f in SPLIT_FILES],
            what=f"FERV39k {self.split} split file",
            option="labels_file",
        )
        self.media_dir = locate_dir(
            self.root, media_dir, MEDIA_DIRS, what="FERV39k face-crop folder", option="media_dir"
        )
        self._load(
            self._read(),
            self.labels_file,
            {"labels_file": self.labels_file, "media_dir": self.media_dir},
        )

    def _read(self) -> Iterator[Sample]:
        lines = self.labels_file.read_text(encoding="utf-8-sig").splitlines()
        for number, text in enumerate(lines, start=1):
            fields = [f for f in _FIELDS.split(text.strip()) if f]
            if not fields:
                continue
            label = self.label_space.normalize(fields[-1]) if len(fields) == 2 else None
            if label is None:
                if number == 1:  # a header line
                    continue
                raise InputError(
                    f"{self.labels_file} line {number}: expected "
                    f"'<scene>/<emotion>/<clip> <emotion>' with an emotion among "
                    f"{', '.join(self.label_space.labels)}, got {text.strip()!r}"
                )
            clip = fields[0].strip("/")
            yield Sample(
                id=clip,
                media=self.media_dir / clip,
                labels=(label,),
                meta={"scene": clip.split("/")[0], "split": self.split},
            )
