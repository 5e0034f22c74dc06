"""Full frames of a sample from its dataset, when the dataset is mounted where the run saw it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emovlm.data.base import open_dataset
from emovlm.errors import EmovlmError, InputError
from emovlm.thumbnails import evenly, jpeg_thumbnail
from emovlm.types import Sample
from emovlm.video import probe, read_frames
from emovlm.view.runs import Run

FULL_FRAMES = 4
"""Frames shown per sample, spread evenly over a video (one for an image)."""

FULL_SIDE = 960
"""Longest side of a full frame as sent to the page."""


class MediaFinder:
    """The run's dataset reopened from its config.yaml entry, to find each sample's media."""

    def __init__(self, run: Run) -> None:
        """Open the run's dataset (a missing or moved dataset is remembered as the reason)."""
        self.reason = ""
        self._samples: dict[str, Sample] = {}
        dataset = dict(run.config.get("dataset") or {})
        root = dataset.get("root")
        if not dataset.get("name") or not root:
            self.reason = f"{run.name} has no dataset recorded in config.yaml"
            return
        if not Path(root).exists():
            self.reason = f"the dataset is not mounted: {root} does not exist"
            return
        try:
            opened = open_dataset(
                dataset["name"],
                root,
                split=dataset.get("split"),
                fold=dataset.get("fold"),
                **dict(dataset.get("options") or {}),
            )
            self._samples = {sample.id: sample for sample in opened.samples()}
        except EmovlmError as exc:
            self.reason = f"the dataset at {root} cannot be opened: {exc}"

    def frames(self, sample_id: str) -> dict[str, Any]:
        """The frames that can be shown for a sample (index and time), or why none can."""
        sample = self._samples.get(sample_id)
        if sample is None:
            return {"frames": [], "reason": self.reason or f"{sample_id!r} is not in the dataset"}
        try:
            info = probe(sample.media)
        except EmovlmError as exc:
            return {"frames": [], "reason": str(exc)}
        picks = evenly(list(range(max(info.frame_count, 1))), FULL_FRAMES)
        fps = info.fps or 1.0
        return {
            "frames": [
                {"index": index, "caption": f"frame {index} · {index / fps:.2f} s"}
                for index in picks
            ],
            "reason": "",
        }

    def frame(self, sample_id: str, index: int) -> bytes:
        """One frame of a sample's media as a JPEG at most FULL_SIDE pixels on its longer side."""
        sample = self._samples.get(sample_id)
        if sample is None:
            raise InputError(self.reason or f"sample {sample_id!r} is not in the dataset")
        shown = {f["index"] for f in self.frames(sample_id)["frames"]}
        if index not in shown:
            raise InputError(f"frame {index} of {sample_id!r} is not one of {sorted(shown)}")
        clip = read_frames(sample.media, [index])
        return jpeg_thumbnail(clip.frames[0].image, max_side=FULL_SIDE, quality=85)
