"""FERV39k: face-crop frame folders with the official All_scenes train/test split files."""

from __future__ import annotations

import re
from collections.abc import Iterator

from emovlm.data.split_file import SplitFileDataset
from emovlm.errors import InputError
from emovlm.types import Sample

SPLIT_FILES = ("4_setups/All_scenes/{split}_All.csv",)
MEDIA_DIRS = ("2_ClipsforFaceCrop",)
_FIELDS = re.compile(r"[,\s]+")


class FERV39k(SplitFileDataset):
    """FERV39k split `train`/`test` (no folds); rows such as `Action/Happy/0015 Happy`."""

    name = "ferv39k"

    split_files = SPLIT_FILES
    media_dirs = MEDIA_DIRS
    folds = 1
    title = "FERV39k"
    media_what = "face-crop folder"

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
