"""DFEW: single-label clips (videos or frame folders) with the official 5-fold split files."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from emovlm.data.paths import index_media
from emovlm.data.split_file import SplitFileDataset
from emovlm.errors import InputError
from emovlm.types import Sample

SPLIT_FILES = (
    "EmoLabel_DataSplit/{split}(single-labeled)/set_{fold}.csv",  # the dataset release
    "label/single_{split}set_{fold}.csv",  # the authors' GitHub README layout
)
MEDIA_DIRS = (
    "Clip/clip_224x224",  # face-aligned frame folders, as the DFER baselines use
    "data",  # the authors' GitHub README layout
    "Clip/original",  # the original clips (mp4), possibly in part_N/ sub-folders
    "Clip/clip_224x224_avi",
    "Clip/clip_224x224_16f",
)
NOT_SINGLE_LABEL = 0


def clip_key(name: str) -> str | None:
    """DFEW clip number as a 5-digit id ('1', '00001' → '00001'), or None for other names."""
    return f"{int(name):05d}" if name.isdigit() else None


class DFEW(SplitFileDataset):
    """DFEW split `train`/`test` of fold 1-5; labels 1-7 as in the release, label 0 skipped."""

    name = "dfew"

    split_files = SPLIT_FILES
    media_dirs = MEDIA_DIRS
    folds = 5
    title = "DFEW"

    def _read(self) -> Iterator[Sample]:
        media = index_media(self.media_dir, clip_key)
        for line, video, code in _split_rows(self.labels_file):
            if code == NOT_SINGLE_LABEL:
                self.skipped["label 0 (not single-label)"] += 1
                continue
            clip_id = clip_key(video)
            if clip_id is None or not 1 <= code <= len(self.label_space):
                raise InputError(
                    f"{self.labels_file} line {line}: expected a clip number and a label 0-7, got "
                    f"{video!r}, {code}; is this a DFEW split file? (name one with labels_file=)"
                )
            yield Sample(
                id=clip_id,
                media=media.get(clip_id, self.media_dir / clip_id),
                labels=(self.label_space.labels[code - 1],),
                meta={"dfew_label": code, "split": self.split, "fold": self.fold},
            )


def _split_rows(path: Path) -> Iterator[tuple[int, str, int]]:
    """(line number, video_name, label) for each row of a DFEW split CSV."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip(): name for name in reader.fieldnames or []}
        if reader.fieldnames and all(n.strip().isdigit() for n in reader.fieldnames):
            raise InputError(
                f"{path}: the header line is missing: line 1 is a data row "
                f"({','.join(reader.fieldnames)}); add the line video_name,label at the top"
            )
        if "video_name" not in columns or "label" not in columns:
            raise InputError(
                f"{path}: expected a header with columns video_name,label; found "
                f"{', '.join(columns) or 'no header'}"
            )
        for row in reader:
            video = (row[columns["video_name"]] or "").strip()
            label = (row[columns["label"]] or "").strip()
            if not video and not label:
                continue
            try:
                code = int(label)
            except ValueError:
                raise InputError(
                    f"{path} line {reader.line_num}: label {label!r} is not a number 0-7"
                ) from None
            yield reader.line_num, video, code
