"""Following faces through a stream of frames fed in chunks, with ids that stay stable.

The detector runs on every `step`-th frame of the stream and on the last one (keyframes). Each
face found on a keyframe joins the track whose last face overlaps it most (IoU of at least
`match_iou`; a track is remembered for `memory` keyframes, so a face missed on a keyframe or
two keeps its id), or starts a new track. A frame between two keyframes gets, per track, the
linear interpolation of its faces on both keyframes, or the face of the one keyframe that has
it; a frame where no track has a face has none: the face left (or was not found).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from emovlm.errors import InputError
from emovlm.faces.base import Face, FaceDetector
from emovlm.faces.boxes import box_area, intersection_area
from emovlm.faces.select import main_face
from emovlm.faces.track import interpolate_faces
from emovlm.types import Box, Frame

NARROW_RANGE = 2.0
"""A narrowed search looks for faces from 1/NARROW_RANGE to NARROW_RANGE times the known size."""


@dataclass(frozen=True)
class TrackedFace:
    """One face in one frame: its track id, its box and landmarks, and whether it is the main face."""

    track: int
    face: Face
    main: bool


@dataclass
class _Keyframe:
    """The faces found on one keyframe, by track id, and the main face's track id."""

    position: int
    faces: dict[int, Face] = field(default_factory=dict)
    main: int | None = None


class FaceTracker:
    """Faces of a frame stream fed chunk by chunk; memory holds at most one chunk plus `step` frames.

    `feed(frames)` returns the frames whose faces are settled, with their faces (all tracks, or
    only the main face's); `finish()` settles the rest. `person_box` picks the main face as
    `main_face` does. With `narrow` and a detector that can search a face-size range
    (`searches_face_range`), keyframes after the first of each chunk look only for faces near
    the main face's last size; a keyframe where that finds nothing is searched in full.
    """

    def __init__(
        self,
        detector: FaceDetector,
        step: int,
        *,
        person_box: Box | None = None,
        all_faces: bool = False,
        match_iou: float = 0.3,
        memory: int = 3,
        narrow: bool = True,
    ) -> None:
        if step < 1:
            raise InputError(f"face step must be a positive number of frames, got {step}")
        self.detector, self.step, self.person_box = detector, step, person_box
        self.all_faces, self.match_iou, self.memory = all_faces, match_iou, memory
        self.narrow = narrow and getattr(detector, "searches_face_range", False)
        self.n_detected = 0
        self._seen = 0
        self._pending: list[Frame] = []
        self._last: _Keyframe | None = None
        self._recent: dict[int, tuple[Face, int]] = {}  # track → (last face, keyframe number)
        self._keyframes = 0
        self._next_id = 0

    def feed(self, frames: Sequence[Frame]) -> list[tuple[Frame, list[TrackedFace]]]:
        """Add the next frames of the stream; returns the frames settled so far, in order."""
        start = self._seen - len(self._pending)
        self._pending.extend(frames)
        self._seen += len(frames)
        keys = [i for i in range(len(self._pending)) if (start + i) % self.step == 0]
        return self._settle(start, keys)

    def finish(self) -> list[tuple[Frame, list[TrackedFace]]]:
        """Settle the frames still waiting for a keyframe: the stream's last frame becomes one."""
        if not self._pending:
            return []
        return self._settle(self._seen - len(self._pending), [len(self._pending) - 1])

    def _settle(self, start: int, keys: list[int]) -> list[tuple[Frame, list[TrackedFace]]]:
        """Detect on the pending keyframes `keys`, then hand out every frame up to the last one."""
        if not keys:
            return []
        found = self._detect([self._pending[k].image for k in keys])
        settled: list[tuple[Frame, list[TrackedFace]]] = []
        done = 0
        for key, faces in zip(keys, found, strict=True):
            keyframe = self._assign(start + key, faces)
            for i in range(done, key):
                settled.append((self._pending[i], self._between(start + i, keyframe)))
            settled.append((self._pending[key], self._faces_at(keyframe, keyframe.faces)))
            self._last, done = keyframe, key + 1
        self._pending = self._pending[done:]
        return settled

    def _detect(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces in the keyframe images; narrowed to the main face's size after the first."""
        self.n_detected += len(images)
        size = self._main_size()
        if size is None or len(images) < 2:
            return self.detector.detect(images)
        found = self.detector.detect(images[:1])
        found += self.detector.detect(  # type: ignore[call-arg]
            images[1:], face_range=(size / NARROW_RANGE, size * NARROW_RANGE)
        )
        missed = [i for i, faces in enumerate(found) if not self._main_of(faces)]
        for i, faces in zip(missed, self.detector.detect([images[i] for i in missed]), strict=True):
            found[i] = faces
        return found

    def _main_size(self) -> float | None:
        """The main face's longer side on the last keyframe, when narrowing applies."""
        if not self.narrow or self.all_faces or self._last is None or self._last.main is None:
            return None
        face = self._last.faces[self._last.main]
        return max(face.width, face.height)

    def _main_of(self, faces: list[Face]) -> Face | None:
        """The main face among `faces` (see `main_face`)."""
        return main_face(faces, self.person_box)

    def _assign(self, position: int, faces: list[Face]) -> _Keyframe:
        """Give each face of a keyframe a track id: the best-overlapping recent track, or a new one."""
        self._keyframes += 1
        self._recent = {
            track: seen
            for track, seen in self._recent.items()
            if self._keyframes - seen[1] <= self.memory
        }
        keyframe = _Keyframe(position)
        ids = list(self._recent)
        if faces and ids:
            new_boxes = np.array([face.box for face in faces])
            old_boxes = np.array([self._recent[track][0].box for track in ids])
            overlap = np.stack([_iou(box, old_boxes) for box in new_boxes])
            while overlap.size and overlap.max() >= self.match_iou:
                face_i, track_i = np.unravel_index(np.argmax(overlap), overlap.shape)
                keyframe.faces[ids[track_i]] = faces[face_i]
                overlap[face_i, :], overlap[:, track_i] = -1.0, -1.0
        taken = {id(face) for face in keyframe.faces.values()}
        for face in faces:
            if id(face) not in taken:
                keyframe.faces[self._next_id] = face
                self._next_id += 1
        main = self._main_of(faces)
        keyframe.main = next((t for t, f in keyframe.faces.items() if f is main), None)
        for track, face in keyframe.faces.items():
            self._recent[track] = (face, self._keyframes)
        return keyframe

    def _between(self, position: int, after: _Keyframe) -> list[TrackedFace]:
        """Faces of a frame between the last keyframe and `after`, by interpolation or holding."""
        before = self._last
        if before is None:
            return self._faces_at(after, after.faces)
        t = (position - before.position) / (after.position - before.position)
        faces = {
            track: interpolate_faces(before.faces[track], after.faces[track], t)
            if track in after.faces
            else before.faces[track]
            for track in before.faces
        }
        faces.update({k: f for k, f in after.faces.items() if k not in before.faces})
        main = before.main if before.main is not None else after.main
        return self._faces_at(_Keyframe(position, faces, main), faces)

    def _faces_at(self, keyframe: _Keyframe, faces: dict[int, Face]) -> list[TrackedFace]:
        """The tracked faces handed out for one frame: all tracks by id, or the main face alone."""
        tracked = [
            TrackedFace(track, faces[track], track == keyframe.main) for track in sorted(faces)
        ]
        return tracked if self.all_faces else [face for face in tracked if face.main]


def _iou(box: Box, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with each of (N, 4) boxes."""
    inter = intersection_area(box, boxes)
    union = box_area(np.asarray([box]))[0] + box_area(boxes) - inter
    return inter / np.maximum(union, 1e-12)
