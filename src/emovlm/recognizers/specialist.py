"""The offline specialist recognizer: faces → per-frame expression probabilities → clip label."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emovlm.backends.base import EXPRESSION_MODELS, ExpressionModel
from emovlm.errors import InputError, MediaError
from emovlm.faces.crop import crop_face
from emovlm.faces.registry import get_face_detector
from emovlm.faces.track import track_faces
from emovlm.frames import parse_sampler
from emovlm.labels import LabelSpace
from emovlm.recognizers.aggregate import AGGREGATORS
from emovlm.train.heads import Head, load_head
from emovlm.types import Clip, Cost, Prediction, Sample, Status
from emovlm.video import probe, read_frames


def class_map(source: Sequence[str], target: LabelSpace) -> np.ndarray:
    """A (len(source), len(target)) 0/1 matrix sending each model class to the label it names."""
    matrix = np.zeros((len(source), len(target)), dtype=np.float32)
    for i, name in enumerate(source):
        label = target.normalize(name)
        if label is not None:
            matrix[i, target.index(label)] = 1.0
    return matrix


@dataclass
class FaceCrops:
    """One sample's frames and face crops waiting for the batched model call."""

    sample: Sample
    clip: Clip
    frame_ids: list[int]
    crops: list[np.ndarray]
    seconds: float


class SpecialistRecognizer:
    """Vision-only expression model over detected faces, one probability per frame, then per clip.

    With `head` (a file written by `emovlm finetune --target specialist`) the model's own
    classifier and class mapping are replaced by the trained head, which reads the model's
    penultimate features and answers in the dataset's own label space; `model` then defaults to
    the expression model the head was trained on.
    """

    name = "specialist"

    def __init__(
        self,
        label_space: LabelSpace,
        *,
        model: str | None = None,
        faces: str = "mtcnn",
        face_step: int = 10,
        min_face: float = 0.1,
        frames: str = "all",
        aggregate: str = "mean",
        multi_label_threshold: float = 0.2,
        device: str = "cpu",
        head: str | None = None,
    ) -> None:
        if aggregate not in AGGREGATORS:
            raise InputError(
                f"unknown --aggregate {aggregate!r}; choose one of: {', '.join(AGGREGATORS)}"
            )
        if face_step < 1:
            raise InputError(f"--face-step must be at least 1, got {face_step}")
        self.label_space = label_space
        self.head: Head | None = load_head(head) if head else None
        model = model or (self.head.model_name if self.head else "fer-xception")
        if self.head is not None:
            self.head.check_fits(label_space, model)
        self.model_name, self.faces, self.face_step = model, faces, face_step
        self.min_face = min_face
        self.sampler = parse_sampler(frames)
        self.aggregate = aggregate
        self.threshold = multi_label_threshold
        self.device = device
        self.model: ExpressionModel = EXPRESSION_MODELS.get(model)(device=device)
        detector_settings = {"min_face_fraction": min_face} if faces == "mtcnn" else {}
        self.detector = get_face_detector(faces, device=device, **detector_settings)
        self.mapping = class_map(self.model.classes, label_space)
        self.unreachable = (
            self.head.untrained_labels
            if self.head is not None
            else tuple(
                lab for j, lab in enumerate(label_space.labels) if not self.mapping[:, j].any()
            )
        )
        if len(self.unreachable) == len(label_space):
            raise InputError(f"model {model!r} cannot output any label of {label_space.name!r}")

    def config(self) -> Mapping[str, Any]:
        """The settings that determine this recognizer's answers."""
        head = {"head": self.head.fingerprint()} if self.head is not None else {}
        return {
            "recognizer": self.name,
            "label_set": self.label_space.name,
            "model": self.model_name,
            "faces": self.faces,
            "face_step": self.face_step,
            "min_face": self.min_face,
            "frames": str(self.sampler),
            "aggregate": self.aggregate,
            "multi_label_threshold": self.threshold,
            "unreachable_labels": list(self.unreachable),
            **head,
        }

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """Predict a batch: one model call over every face crop of every sample in the batch."""
        results: dict[str, Prediction] = {}
        pending: list[FaceCrops] = []
        for sample in samples:
            try:
                pending.append(self.face_crops(sample))
            except MediaError as exc:
                results[sample.id] = Prediction.failed(sample.id, str(exc))
        all_crops = [crop for item in pending for crop in item.crops]
        model_start = time.perf_counter()
        outputs = (
            self.model.embed(all_crops)
            if self.head is not None
            else self.model.predict_proba(all_crops)
        )
        seconds_per_crop = (time.perf_counter() - model_start) / max(1, len(all_crops))
        offset = 0
        for item in pending:
            n = len(item.crops)
            model_seconds = n * seconds_per_crop
            results[item.sample.id] = self._finish(
                item, outputs[offset : offset + n], model_seconds
            )
            offset += n
        return [results[s.id] for s in samples]

    def face_crops(self, sample: Sample) -> FaceCrops:
        """Read the sampled frames, find and track the face, and crop it at the model's input size."""
        started = time.perf_counter()
        info = probe(sample.media)
        indices = self.sampler.indices(info.frame_count, info.fps)
        clip = read_frames(sample.media, indices)
        images = [frame.image for frame in clip.frames]
        faces = track_faces(images, self.detector, step=self.face_step, person_box=sample.box)
        frame_ids = [i for i, face in enumerate(faces) if face is not None]
        if not frame_ids:
            raise MediaError(
                f"{sample.media}: no face found in {len(images)} frame(s) with --faces {self.faces}; "
                "if the media are already face crops use --faces none, or try --faces haar"
            )
        size = self.model.input_size
        crops = [crop_face(images[i], faces[i], size=size) for i in frame_ids]
        return FaceCrops(sample, clip, frame_ids, crops, time.perf_counter() - started)

    def _label_probs(self, outputs: np.ndarray) -> np.ndarray:
        """Per-frame label probabilities: the head's from features, or the model's mapped by name."""
        if self.head is not None:
            return self.head.frame_probs(outputs)
        mapped = outputs @ self.mapping
        return mapped / np.clip(mapped.sum(axis=1, keepdims=True), 1e-12, None)

    def _finish(
        self, item: FaceCrops, frame_outputs: np.ndarray, model_seconds: float
    ) -> Prediction:
        mapped = self._label_probs(frame_outputs)
        clip_probs = AGGREGATORS[self.aggregate](mapped, self.label_space)
        labels = self.label_space.labels
        order = np.argsort(-clip_probs, kind="stable")
        ranked = tuple(labels[j] for j in order)
        if self.label_space.multi_label:
            chosen = [labels[j] for j in order if clip_probs[j] >= self.threshold]
            ranked = tuple(chosen or ranked[:1])
        extra: dict[str, Any] = {
            "frames_sampled": len(item.clip.frames),
            "frames_with_face": len(item.frame_ids),
        }
        if len(item.clip.frames) > 1:
            times = [item.clip.frames[i].time for i in item.frame_ids]
            extra["trajectory"] = {
                "times": times,
                "labels": list(labels),
                "probs": mapped.round(5).tolist(),
            }
        return Prediction(
            sample_id=item.sample.id,
            labels=ranked,
            scores={lab: float(clip_probs[j]) for j, lab in enumerate(labels)},
            status=Status.OK,
            cost=Cost(seconds=item.seconds + model_seconds),
            extra=extra,
        )
