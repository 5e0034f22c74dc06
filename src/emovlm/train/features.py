"""Per-frame face features of labelled samples, from a frozen expression model, extracted once and cached.

Frames, faces and crops come from the specialist recognizer's own pipeline (streamed in bounded
chunks: only the features are kept), so a head sees at training time exactly the features it
will see at evaluation. Each sample's features are cached
in one file keyed by the expression model, the face and frame settings, the person box and the
media's path, modification time and size: a second training on the same data reads features
instead of running face detection again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emovlm.assets import cache_dir
from emovlm.labels import LabelSpace
from emovlm.recognizers.settings import SpecialistSettings
from emovlm.recognizers.specialist import SpecialistRecognizer
from emovlm.run.progress import EvalProgress
from emovlm.train.settings import FaceSettings
from emovlm.types import Sample, Status

FEATURE_VERSION = 2
"""Bumped when the cached arrays' meaning changes, so old cache files are not reused."""


@dataclass(frozen=True)
class FrameFeatures:
    """One sample's face features (T, D) float32 in time order, with each frame's time in seconds."""

    features: np.ndarray
    times: np.ndarray


@dataclass
class ExtractedFeatures:
    """Features of the samples that have a face, and why the others have none."""

    samples: list[Sample] = field(default_factory=list)
    features: list[FrameFeatures] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    n_from_cache: int = 0


def default_feature_cache() -> Path:
    """Where features are cached unless told otherwise: the emovlm cache folder's features/."""
    return cache_dir() / "features"


class FeatureExtractor:
    """Face features of samples through a specialist recognizer's frames → faces → crops → model."""

    def __init__(
        self,
        label_space: LabelSpace,
        settings: FaceSettings | None = None,
        *,
        cache_folder: Path | None = None,
        **options: Any,
    ) -> None:
        faces = FaceSettings.of(settings, options)
        self.pipeline = SpecialistRecognizer(label_space, faces.pick(SpecialistSettings))
        self.cache_folder = Path(cache_folder) if cache_folder else default_feature_cache()

    @property
    def feature_size(self) -> int:
        """D: the length of one frame's feature vector."""
        return int(self.pipeline.model.embedding_size)

    def settings(self) -> dict[str, Any]:
        """The settings that determine the features (recorded in the head file)."""
        p = self.pipeline
        return {
            "model": p.model_name,
            "faces": p.faces,
            "face_step": p.face_step,
            "min_face": p.min_face,
            "frames": str(p.sampler),
        }

    def cache_key(self, sample: Sample) -> str:
        """SHA-256 of the feature settings, the person box and the media's path, mtime and size."""
        stat = Path(sample.media).stat()
        identity = {
            "version": FEATURE_VERSION,
            **self.settings(),
            "box": list(sample.box) if sample.box is not None else None,
            "media": os.path.abspath(sample.media),
            "mtime_ns": stat.st_mtime_ns,
            "size": stat.st_size,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def extract(
        self, samples: Sequence[Sample], *, batch_size: int = 16, progress: bool = False
    ) -> ExtractedFeatures:
        """Features of every sample, from the cache where present; unreadable or faceless ones fail."""
        result = ExtractedFeatures()
        found: dict[str, FrameFeatures] = {}
        with EvalProgress("face features", len(samples), 0, progress) as bar:
            for start in range(0, len(samples), batch_size):
                batch = samples[start : start + batch_size]
                bar.advance(self._extract_batch(batch, found, result))
        for sample in samples:
            if sample.id in found:
                result.samples.append(sample)
                result.features.append(found[sample.id])
        return result

    def _extract_batch(
        self,
        batch: Sequence[Sample],
        found: dict[str, FrameFeatures],
        result: ExtractedFeatures,
    ) -> list[Status]:
        """Fill `found` for one batch: cached samples are read, the rest streamed through the model."""
        to_run = []
        for sample in batch:
            try:
                key = self.cache_key(sample)
            except OSError as exc:
                result.failed[sample.id] = f"{sample.media}: {exc.strerror or exc}"
                continue
            cached = self._read(key)
            if cached is not None:
                found[sample.id] = cached
                result.n_from_cache += 1
            else:
                to_run.append((key, sample))
        analysed = self.pipeline.analyse([sample for _, sample in to_run], embed=True)
        for (key, sample), rows in zip(to_run, analysed, strict=True):
            if isinstance(rows, str):
                result.failed[sample.id] = rows
                continue
            features = FrameFeatures(rows.outputs[rows.main], rows.time[rows.main])
            self._write(key, features)
            found[sample.id] = features
        return [Status.OK if s.id in found else Status.FAILED for s in batch]

    def _path(self, key: str) -> Path:
        return self.cache_folder / key[:2] / f"{key}.npz"

    def _read(self, key: str) -> FrameFeatures | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                return FrameFeatures(data["features"], data["times"])
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache file is recomputed

    def _write(self, key: str, features: FrameFeatures) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(temporary, features=features.features, times=features.times)
        os.replace(temporary, path)
