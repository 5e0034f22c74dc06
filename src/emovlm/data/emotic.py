"""EMOTIC: one sample per annotated person, with the person's body box, categories and VAD."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from emovlm.data.base import AnnotatedDataset
from emovlm.data.emotic_csv import read_annotations_csv
from emovlm.data.emotic_mat import COMBINE_CHOICES, Combine, EmoticPerson, read_annotations_mat
from emovlm.data.paths import locate_dir, locate_file
from emovlm.errors import InputError
from emovlm.labels import get_label_space
from emovlm.types import Box, Sample

ANNOTATION_FILES = ("Annotations/Annotations.mat", "Annotations.mat", "emotic_pre/{split}.csv")
IMAGE_DIRS = ("emotic", ".")


class EMOTIC(AnnotatedDataset):
    """EMOTIC split `train`/`val`/`test` from Annotations.mat or its per-split CSV export.

    Sample ids are `<folder>/<filename>#<n>`, n counting the image's persons from 0 in file order;
    boxes are (x1, y1, x2, y2) pixels clipped to the image; VAD is on EMOTIC's 1-10 scale.
    """

    name = "emotic"

    def __init__(
        self,
        root: Path,
        split: str = "test",
        fold: int = 1,
        *,
        annotations_file: str | Path | None = None,
        images_dir: str | Path | None = None,
        combine: str = "official",
    ) -> None:
        super().__init__(root, split, fold)
        self.label_space = get_label_space("emotic")
        self._check_split(("train", "val", "test"))
        self._check_fold(1)
        self.annotations_file = locate_file(
            self.root,
            annotations_file,
            [f.format(split=self.split) for f in ANNOTATION_FILES],
            what="EMOTIC annotations",
            option="annotations_file",
        )
        self.images_dir = locate_dir(
            self.root, images_dir, IMAGE_DIRS, what="EMOTIC image folder", option="images_dir"
        )
        if combine not in COMBINE_CHOICES:
            raise InputError(f"combine={combine!r} is not one of: {', '.join(COMBINE_CHOICES)}")
        if combine != "official" and self.annotations_file.suffix.lower() != ".mat":
            raise InputError(
                f"combine={combine} needs Annotations.mat: the CSV export "
                f"{self.annotations_file} holds one combined label list per person"
            )
        self.combine = cast(Combine, combine)
        self._load(
            self._read(),
            self.annotations_file,
            {
                "annotations_file": self.annotations_file,
                "images_dir": self.images_dir,
                "combine": combine,
            },
        )

    def _read(self) -> Iterator[Sample]:
        if self.annotations_file.suffix.lower() == ".mat":
            persons = read_annotations_mat(self.annotations_file, self.split, self.combine)
        else:
            persons = read_annotations_csv(self.annotations_file)
        seen: Counter[str] = Counter()
        for person in persons:
            image = f"{person.folder}/{person.filename}"
            number = seen[image]
            seen[image] += 1
            labels = self._labels(person, image, number)
            if not labels:
                self.skipped["person without category annotations"] += 1
                continue
            yield Sample(
                id=f"{image}#{number}",
                media=self.images_dir / person.folder / person.filename,
                labels=labels,
                box=_clip(person.box, person.image_size),
                vad=person.vad,
                meta=_meta(person, number),
            )

    def _labels(self, person: EmoticPerson, image: str, number: int) -> tuple[str, ...]:
        labels = []
        for category in person.categories:
            label = self.label_space.normalize(category)
            if label is None:
                raise InputError(
                    f"{self.annotations_file}: {image} person {number} has category {category!r}, "
                    f"which is not one of EMOTIC's 26: {', '.join(self.label_space.labels)}"
                )
            labels.append(label)
        return tuple(sorted(set(labels), key=self.label_space.index))


def _clip(box: Box, size: tuple[int, int] | None) -> Box:
    """The box clipped to the image when its size is known (a few official boxes overhang)."""
    if size is None:
        return box
    width, height = size
    x1, y1, x2, y2 = box
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )


def _meta(person: EmoticPerson, number: int) -> dict[str, object]:
    meta: dict[str, object] = {
        "folder": person.folder,
        "filename": person.filename,
        "person": number,
        "gender": person.gender,
        "age": person.age,
    }
    if person.image_size is not None:
        meta["image_size"] = person.image_size
    if person.annotators is not None:
        meta["annotators"] = person.annotators
    return meta
