"""The offline specialist recognizer: faces → per-frame expression probabilities → clip label.

A video streams through in chunks of `CHUNK_FRAMES` sampled frames: decode → detect and track
faces → crop → expression model. Only per-frame results (model outputs, boxes, times) are
kept, never the frames, so memory does not grow with the video's length.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emovlm.backends.base import EXPRESSION_MODELS, ExpressionModel
from emovlm.backends.expression.heads import Head, load_head
from emovlm.errors import InputError, MediaError
from emovlm.faces.base import Face
from emovlm.faces.crop import crop_face
from emovlm.faces.registry import get_face_detector
from emovlm.faces.stream import FaceTracker, TrackedFace
from emovlm.frames import parse_sampler
from emovlm.labels import LabelSpace
from emovlm.recognizers.aggregate import AGGREGATORS
from emovlm.recognizers.settings import SpecialistSettings, with_settings
from emovlm.thumbnails import EXTRA_KEY as THUMBNAILS_KEY
from emovlm.thumbnails import MAX_PER_SAMPLE, MAX_SIDE, evenly, thumbnail_entries
from emovlm.types import Cost, Frame, FrameResults, Prediction, Sample, Status
from emovlm.video import probe, read_ahead, stream_frames

CHUNK_FRAMES = 64
"""Sampled frames decoded, tracked, cropped and classified together; nothing more is held."""

READ_AHEAD_FRAMES = CHUNK_FRAMES
"""Frames decoded ahead on a background thread while a chunk is analysed (0: none)."""

MAX_GAPS = 100
"""Gaps listed per sample in `extra["gaps"]`; `extra["n_gaps"]` counts them all."""

GAP_SECONDS = 1.0
"""A jump between analysed frames of more than this (and 4 median spacings) is a gap."""


def class_map(source: Sequence[str], target: LabelSpace) -> np.ndarray:
    """A (len(source), len(target)) 0/1 matrix sending each model class to the label it names."""
    matrix = np.zeros((len(source), len(target)), dtype=np.float32)
    for i, name in enumerate(source):
        label = target.normalize(name)
        if label is not None:
            matrix[i, target.index(label)] = 1.0
    return matrix


@dataclass(frozen=True)
class FaceRows:
    """One sample analysed: one row per analysed frame and face (track -1: no face in that frame).

    `outputs` holds the expression model's probabilities, or its features with `embed`, for
    the rows with a face (NaN elsewhere); `gaps` lists stretches without results.
    """

    index: np.ndarray
    time: np.ndarray
    box: np.ndarray
    track: np.ndarray
    main: np.ndarray
    outputs: np.ndarray
    frames_sampled: int
    gaps: list[dict[str, Any]]
    seconds: float
    thumbnails: list[dict[str, str]] = field(default_factory=list)

    @property
    def has_face(self) -> np.ndarray:
        """Rows that hold a face."""
        return self.track >= 0


@with_settings(SpecialistSettings)
class SpecialistRecognizer:
    """Vision-only expression model over detected faces, one probability per frame, then per clip.

    With `head` (a file written by `emovlm finetune --target specialist`) the model's own
    classifier and class mapping are replaced by the trained head, which reads the model's
    penultimate features and answers in the dataset's own label space; `model` then defaults to
    the expression model the head was trained on. With `all_faces`, every tracked face gets
    per-frame rows in `Prediction.frames`; the clip label always comes from the main face.
    """

    name = "specialist"

    def __init__(
        self, label_space: LabelSpace, settings: SpecialistSettings | None = None, **options: Any
    ) -> None:
        self.spec = s = SpecialistSettings.of(settings, options)
        model, faces, face_step, min_face = s.model, s.faces, s.face_step, s.min_face
        frames, aggregate, device, head = s.frames, s.aggregate, s.device, s.head
        multi_label_threshold, all_faces = s.multi_label_threshold, s.all_faces
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
        self.all_faces = all_faces
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
        # Warm up on the real input size, so the first sample is not timed with the set-up.
        self.model.predict_proba([np.zeros((self.model.input_size,) * 2 + (3,), np.uint8)])

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
            "all_faces": self.all_faces,
            "unreachable_labels": list(self.unreachable),
            **head,
            "settings": self.spec.recorded(),
        }

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """Predict a batch, streaming each sample's frames through in bounded chunks.

        Unreadable or faceless media give a failed prediction with the reason.
        """
        return [
            Prediction.failed(sample.id, str(rows), Cost(seconds=rows.seconds))
            if isinstance(rows, _Failure)
            else self._finish(sample, rows)
            for sample, rows in zip(
                samples, self.analyse(samples, embed=self.head is not None), strict=True
            )
        ]

    def analyse(
        self, samples: Sequence[Sample], *, embed: bool = False
    ) -> list[FaceRows | _Failure]:
        """Stream each sample's sampled frames through tracking, cropping and the model.

        Only per-frame rows are kept. Crops of consecutive samples share model calls of about
        `CHUNK_FRAMES` faces, so a batch of still images is classified together. A sample whose
        media cannot be read, or that has no face, gives a `_Failure` (a MediaError with the
        seconds spent); a stream that breaks off after some frames keeps them and lists the
        rest as a gap.
        """
        queue = _ModelQueue(self.model.embed if embed else self.model.predict_proba, self._crop)
        pending = []
        with _one_torch_thread():
            try:
                for sample in samples:
                    started = time.perf_counter()
                    try:
                        pending.append(self._stream(sample, queue))
                    except MediaError as exc:
                        pending.append(_Failure(str(exc), time.perf_counter() - started))
            finally:
                queue.close()
        return [item if isinstance(item, _Failure) else item.rows() for item in pending]

    def _stream(self, sample: Sample, queue: _ModelQueue) -> _Pending:
        """Decode, track and crop one sample chunk by chunk, queueing the crops for the model."""
        started = time.perf_counter()
        info = probe(sample.media)
        indices = self.sampler.indices(info.frame_count, info.fps)
        frames = stream_frames(sample.media, indices, threads=decode_threads())
        if READ_AHEAD_FRAMES:  # the next chunk decodes on another core while this one is analysed
            frames = read_ahead(frames, READ_AHEAD_FRAMES)
        tracker = FaceTracker(
            self.detector, self.face_step, person_box=sample.box, all_faces=self.all_faces
        )
        pending = _Pending(sample, self.faces)
        thumbs_at = evenly(sorted(set(indices)), MAX_PER_SAMPLE)
        try:
            for chunk in _chunks(frames, CHUNK_FRAMES):
                pending.sampled += len(chunk)
                pending.add(queue.add(self._rows(tracker.feed(chunk), thumbs_at)))
        except MediaError as exc:
            if not pending.sampled:
                raise
            pending.broken = (info.duration, f"not decoded: {exc}")
        finally:
            frames.close()  # closes the file and stops a read-ahead thread, also on an error
        pending.add(queue.add(self._rows(tracker.finish(), thumbs_at)))
        pending.seconds = time.perf_counter() - started
        return pending

    def _rows(self, settled: list[tuple[Frame, list[TrackedFace]]], thumbs_at: list[int]) -> _Chunk:
        """Rows for settled frames: one per face (or one per faceless frame), their faces, and
        thumbnails of the main face at the first frame at or after each index of `thumbs_at`
        (taken indices are removed from it)."""
        rows = [(frame, face) for frame, faces in settled for face in (faces or [None])]
        faces = [(frame, face.face) for frame, face in rows if face]
        boxes = np.full((len(rows), 4), np.nan, dtype=np.float32)
        track = np.array([face.track if face else -1 for _, face in rows], dtype=np.int32)
        boxes[track >= 0] = np.reshape([face.face.box for _, face in rows if face], (-1, 4))
        columns = {
            "index": np.array([frame.index for frame, _ in rows], dtype=np.int64),
            "time": np.array([frame.time for frame, _ in rows], dtype=np.float64),
            "box": boxes,
            "track": track,
            "main": np.array([bool(face and face.main) for _, face in rows], dtype=bool),
        }
        shown = []
        for frame, face in rows:
            if face and face.main and thumbs_at and frame.index >= thumbs_at[0]:
                del thumbs_at[: bisect.bisect_right(thumbs_at, frame.index)]
                crop = crop_face(frame.image, face.face, size=MAX_SIDE)
                shown.append((f"face at {frame.time:.2f} s", crop))
        return _Chunk(columns, faces, thumbs=thumbnail_entries(shown))

    def _crop(self, frame: Frame, face: Face) -> np.ndarray:
        """The model's input crop of a face: grey for a grey model (no RGB made), else RGB."""
        pixels = frame.grey if self.model.reads_grey else frame.image
        return crop_face(pixels, face, size=self.model.input_size)

    def _label_probs(self, rows: FaceRows) -> np.ndarray:
        """Label probabilities of every row: the head's from features, or the model's by name.

        A head reads each face's features in time order: the main face's rows as one sequence,
        every other track's rows as its own. Faceless rows are NaN.
        """
        probs = np.full((len(rows.index), len(self.label_space)), np.nan, dtype=np.float32)
        if self.head is None:
            mapped = rows.outputs[rows.has_face] @ self.mapping
            probs[rows.has_face] = mapped / np.clip(mapped.sum(axis=1, keepdims=True), 1e-12, None)
            return probs
        probs[rows.main] = self.head.frame_probs(rows.outputs[rows.main])
        for track in np.unique(rows.track[rows.has_face & ~rows.main]):
            mine = (rows.track == track) & ~rows.main
            probs[mine] = self.head.frame_probs(rows.outputs[mine])
        return probs

    def _finish(self, sample: Sample, rows: FaceRows) -> Prediction:
        probs = self._label_probs(rows)
        clip_probs = AGGREGATORS[self.aggregate](probs[rows.main], self.label_space)
        labels = self.label_space.labels
        order = np.argsort(-clip_probs, kind="stable")
        ranked = tuple(labels[j] for j in order)
        if self.label_space.multi_label:
            chosen = [labels[j] for j in order if clip_probs[j] >= self.threshold]
            ranked = tuple(chosen or ranked[:1])
        extra: dict[str, Any] = {
            "frames_sampled": rows.frames_sampled,
            "frames_with_face": int(rows.main.sum()),
        }
        if rows.thumbnails:
            extra[THUMBNAILS_KEY] = rows.thumbnails
        if rows.gaps:
            extra["gaps"] = rows.gaps[:MAX_GAPS]
            extra["n_gaps"] = len(rows.gaps)
        frames = FrameResults(
            labels=tuple(labels),
            index=rows.index,
            time=rows.time,
            probs=probs,
            box=rows.box,
            track=rows.track,
            main=rows.main,
        )
        return Prediction(
            sample_id=sample.id,
            labels=ranked,
            scores={lab: float(clip_probs[j]) for j, lab in enumerate(labels)},
            status=Status.OK,
            cost=Cost(seconds=rows.seconds),
            extra=extra,
            frames=frames,
        )


class _Failure(str):
    """Why a sample could not be analysed (a MediaError's message), with the seconds spent."""

    seconds: float

    def __new__(cls, reason: str, seconds: float) -> _Failure:
        failure = super().__new__(cls, reason)
        failure.seconds = seconds
        return failure


@dataclass
class _Chunk:
    """Rows of some settled frames, their faces to crop until the model has run, then its outputs."""

    columns: dict[str, np.ndarray]
    faces: list[tuple[Frame, Face]]
    outputs: np.ndarray | None = None
    seconds: float = 0.0
    thumbs: list[dict[str, str]] = field(default_factory=list)


class _ModelQueue:
    """Faces waiting for the model, cropped and run about CHUNK_FRAMES at a time across samples.

    Cropping and the model run on a worker thread, so one batch is classified while the caller
    decodes and tracks the next (OpenCV and the network release the GIL). At most one batch
    runs while the next gathers: `add` waits for the running one before handing over another,
    so at most two chunks' frames are held.
    """

    def __init__(
        self,
        run: Callable[[Sequence[np.ndarray]], np.ndarray],
        crop: Callable[[Frame, Face], np.ndarray],
    ) -> None:
        self.run, self.crop = run, crop
        self.held: list[_Chunk] = []
        self.count = 0
        self.worker = ThreadPoolExecutor(
            1, thread_name_prefix="emovlm-expression", initializer=_set_torch_threads, initargs=(1,)
        )
        self.running: Future[None] | None = None

    def add(self, chunk: _Chunk) -> _Chunk:
        """Queue a chunk's faces; hand them to the model once enough are waiting."""
        self.held.append(chunk)
        self.count += len(chunk.faces)
        if self.count >= CHUNK_FRAMES:
            self.flush()
        return chunk

    def flush(self) -> None:
        """Hand every waiting face to the model, after the batch before has finished."""
        self.wait()
        if self.held:
            self.running = self.worker.submit(self._classify, self.held)
        self.held, self.count = [], 0

    def close(self) -> None:
        """Run what is waiting, wait until every chunk has its outputs, and stop the worker."""
        try:
            self.flush()
            self.wait()
        finally:
            self.worker.shutdown(wait=True)

    def wait(self) -> None:
        """Wait for the running batch; its error, if any, is raised here."""
        if self.running is not None:
            running, self.running = self.running, None
            running.result()

    def _classify(self, chunks: list[_Chunk]) -> None:
        """Crop the chunks' faces and run the model; each chunk gets its outputs (NaN where
        faceless) and lets go of its frames."""
        started = time.perf_counter()
        outputs = self.run([self.crop(*face) for chunk in chunks for face in chunk.faces])
        per_crop = (time.perf_counter() - started) / max(1, len(outputs))
        offset = 0
        for chunk in chunks:
            has_face = chunk.columns["track"] >= 0
            chunk.outputs = np.full((len(has_face), outputs.shape[1]), np.nan, dtype=np.float32)
            chunk.outputs[has_face] = outputs[offset : offset + len(chunk.faces)]
            offset += len(chunk.faces)
            chunk.seconds, chunk.faces = per_crop * len(chunk.faces), []


@dataclass
class _Pending:
    """One sample streamed through: its chunks (outputs filled in once the queue has run)."""

    sample: Sample
    faces: str
    chunks: list[_Chunk] = field(default_factory=list)
    sampled: int = 0
    broken: tuple[float, str] | None = None
    seconds: float = 0.0
    thumbs: list[dict[str, str]] = field(default_factory=list)

    def add(self, chunk: _Chunk) -> None:
        """Keep a chunk, moving its thumbnails (at most MAX_PER_SAMPLE a sample) to the sample."""
        self.chunks.append(chunk)
        self.thumbs.extend(chunk.thumbs)
        chunk.thumbs = []

    def rows(self) -> FaceRows | _Failure:
        """The sample's rows, or why it has none (no face in any frame)."""
        columns = {
            key: np.concatenate([chunk.columns[key] for chunk in self.chunks])
            for key in self.chunks[0].columns
        }
        seconds = self.seconds + sum(chunk.seconds for chunk in self.chunks)
        if not (columns["track"] >= 0).any():
            return _Failure(
                f"{self.sample.media}: no face found in {self.sampled} frame(s) with --faces "
                f"{self.faces}; if the media are already face crops use --faces none, or try "
                "--faces haar",
                seconds,
            )
        gaps = _gaps(columns["time"], columns["track"], columns["index"])
        if self.broken is not None:
            end, reason = self.broken
            gaps.append({"start": float(columns["time"][-1]), "end": end, "reason": reason})
        return FaceRows(
            **columns,
            outputs=np.concatenate([chunk.outputs for chunk in self.chunks]),
            frames_sampled=self.sampled,
            gaps=gaps,
            seconds=seconds,
            thumbnails=self.thumbs,
        )


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch runs this thread's work on one core, restored after.

    The stages overlap (decoding, faces here, the expression model on the queue's worker), so
    each keeps to one core; torch's thread count is per thread, so other threads keep theirs.
    """
    before = _set_torch_threads(1)
    try:
        yield
    finally:
        _set_torch_threads(before)


def _set_torch_threads(count: int) -> int:
    """Set the calling thread's torch CPU thread count; the count it had."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    return before


def decode_threads() -> int:
    """Decoding threads for a pass: the cores this process may use, less its two busy threads
    (faces, model), at least one.

    FFmpeg's own choice starts a thread per core, which on a small machine only adds switching
    to the cores tracking and the model already fill (on 2 cores one decoding thread saved a
    fifth of decoding's CPU time); a large machine still decodes on many.
    """
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cores = len(usable) if usable else os.cpu_count() or 1
    return max(1, cores - 2)


def _chunks(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """Consecutive lists of at most `size` frames; a stream that breaks off (MediaError) hands
    out the frames decoded before the break as a last chunk, then raises."""
    chunk: list[Frame] = []
    try:
        for frame in frames:
            chunk.append(frame)
            if len(chunk) == size:
                yield chunk
                chunk = []
    except MediaError:
        if chunk:
            yield chunk
        raise
    if chunk:
        yield chunk


def _gaps(times: np.ndarray, track: np.ndarray, index: np.ndarray) -> list[dict[str, Any]]:
    """Stretches without a result: frames where no face was found, and jumps in time.

    A jump is a step between analysed frames longer than `GAP_SECONDS` and than 4 median steps
    (a variable frame rate that stalls, dropped frames, or a sparse sampler's own spacing).
    """
    gaps: list[dict[str, Any]] = []
    frame_starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    frame_times, faceless = times[frame_starts], track[frame_starts] < 0
    edges = np.flatnonzero(np.diff(np.r_[0, faceless.astype(np.int8), 0]))
    for first, past in zip(edges[::2], edges[1::2], strict=True):
        gaps.append(
            {
                "start": float(frame_times[first]),
                "end": float(frame_times[past - 1]),
                "reason": "no face",
            }
        )
    steps = np.diff(frame_times)
    if len(steps):
        limit = max(GAP_SECONDS, 4 * float(np.median(steps)))
        for i in np.flatnonzero(steps > limit):
            gaps.append(
                {
                    "start": float(frame_times[i]),
                    "end": float(frame_times[i + 1]),
                    "reason": "no frames in the stream",
                }
            )
    return sorted(gaps, key=lambda gap: gap["start"])
