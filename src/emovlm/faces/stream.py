"""Following faces through a stream of frames fed in chunks, with ids that stay stable.

The detector runs on every `step`-th frame of the stream and on the last one (keyframes). Each
face found on a keyframe joins the track whose last face overlaps it most (IoU of at least
`match_iou`; a track is remembered for `memory` keyframes, so a face missed on a keyframe or
two keeps its id), or starts a new track. A frame between two keyframes gets, per track, the
linear interpolation of its faces on both keyframes. A face found on only one of them left
or entered in between: the frames between are searched too, and it is followed from its
keyframe for as long as it is found, so its rows end or start at the frame it did; a frame
where no track has a face has none: the face left (or was not found).
"""

from __future__ import annotations

import math
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

WINDOW = 3.0
"""A narrowed search looks inside a square WINDOW times the known face's side, on its centre."""

FULL_EVERY = 8
"""By default every FULL_EVERY-th keyframe (the first, and then one in so many) is searched in full."""


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
    `main_face` does. With `narrow`, only the main face wanted and a detector that can search
    a window at a face size (`searches_windows`), a keyframe is searched in full only every
    `full_every` keyframes, before a main face is known, or when the window around the main
    face's last box misses it; `n_full` and `n_window` count the two kinds of search.
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
        full_every: int = FULL_EVERY,
    ) -> None:
        if step < 1:
            raise InputError(f"face step must be a positive number of frames, got {step}")
        if full_every < 1:
            raise InputError(f"full face search interval must be at least 1, got {full_every}")
        self.detector, self.step, self.person_box = detector, step, person_box
        self.all_faces, self.match_iou, self.memory = all_faces, match_iou, memory
        self.narrow = narrow and not all_faces and getattr(detector, "searches_windows", False)
        self.full_every = full_every
        self.n_detected = self.n_full = self.n_window = 0
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
            edges = self._edges(keyframe, self._pending[done:key])
            for i in range(done, key):
                settled.append((self._pending[i], self._between(start + i, keyframe, edges)))
            settled.append((self._pending[key], self._faces_at(keyframe, keyframe.faces)))
            self._last, done = keyframe, key + 1
        self._pending = self._pending[done:]
        return settled

    def _detect(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces in the keyframe images: in full, or in a window around the main face.

        Without narrowing every keyframe is searched in full. With it, keyframes whose number
        in the stream is a multiple of `full_every`, and the first when no main face is known
        yet, are searched in full; each other keyframe only in a window around the main face
        of the latest keyframe before it that has one, at that face's size, and in full when
        the window shows no main face.
        """
        self.n_detected += len(images)
        reference = self._last_main()
        if not self.narrow or (reference is None and len(images) < 2):
            return self._full(images)
        first = self._keyframes
        full = [i for i in range(len(images)) if (first + i) % self.full_every == 0]
        if reference is None and 0 not in full:
            full.insert(0, 0)
        found: list[list[Face] | None] = [None] * len(images)
        for i, faces in zip(full, self._full([images[i] for i in full]), strict=True):
            found[i] = faces
        windowed: dict[int, list[int]] = {}  # keyframe searched in full → keyframes after it
        references: dict[int, Face | None] = {-1: reference}
        latest = -1
        for i, faces in enumerate(found):
            if faces is not None:  # a full search: its main face (or none) is the new reference
                references[i], latest = self._main_of(faces), i
            elif references[latest] is not None:
                windowed.setdefault(latest, []).append(i)
        for at, keys in windowed.items():
            around = references[at]
            searched = self._window([images[i] for i in keys], around) if around else []
            for i, faces in zip(keys, searched, strict=True):
                found[i] = faces
        missed = [i for i, faces in enumerate(found) if faces is None or not self._main_of(faces)]
        missed = [i for i in missed if i not in full]
        for i, faces in zip(missed, self._full([images[i] for i in missed]), strict=True):
            found[i] = faces
        return [faces or [] for faces in found]

    def _full(self, images: list[np.ndarray]) -> list[list[Face]]:
        """A search of the whole of each image at every face size."""
        self.n_full += len(images)
        return self.detector.detect(images) if images else []

    def _window(self, images: list[np.ndarray], face: Face) -> list[list[Face]]:
        """A search for faces of about `face`'s size in a window around it, in each image."""
        self.n_window += len(images)
        size = max(face.width, face.height)
        half = WINDOW * size / 2
        x, y = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        height, width = images[0].shape[:2]
        window = (
            max(0, math.floor(x - half)),
            max(0, math.floor(y - half)),
            min(width, math.ceil(x + half)),
            min(height, math.ceil(y + half)),
        )
        if window[2] <= window[0] or window[3] <= window[1]:  # the face lay outside the frame
            return [[] for _ in images]
        return self.detector.detect(  # type: ignore[call-arg]
            images,
            face_range=(size / NARROW_RANGE, size * NARROW_RANGE),
            windows=[window] * len(images),
        )

    def _last_main(self) -> Face | None:
        """The main face of the last keyframe, when there is one."""
        if self._last is None or self._last.main is None:
            return None
        return self._last.faces[self._last.main]

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

    def _edges(self, after: _Keyframe, frames: Sequence[Frame]) -> dict[int, dict[int, Face]]:
        """Where a face that left or entered between the last keyframe and `after` really is.

        A track that is shown (any with `all_faces`; else the main face, or the next one's
        when the earlier main face is not on both keyframes) and found on only one of the two
        keyframes is followed frame by frame from that keyframe into `frames`, the ones between
        them, for as long as a face found there overlaps it: {frame offset: {track: face}}.
        """
        before = self._last
        if before is None or not frames:
            return {}
        if self.all_faces:
            shown = set(before.faces) | set(after.faces)
        elif before.main in after.faces:
            shown = set()  # the main face stays main between them
        else:
            shown = {before.main, after.main} - {None}
        one_sided = sorted(t for t in shown if (t in before.faces) != (t in after.faces))
        if not one_sided:
            return {}
        known = {track: before.faces.get(track) or after.faces[track] for track in one_sided}
        images = [frame.image for frame in frames]
        self.n_detected += len(images)
        if self.narrow and len(known) == 1:
            found = self._window(images, *known.values())
        else:
            found = self._full(images)
        edges: dict[int, dict[int, Face]] = {}
        for track, face in known.items():
            leaving = track in before.faces
            for offset in range(len(frames)) if leaving else reversed(range(len(frames))):
                overlap = _iou(face.box, np.array([f.box for f in found[offset]]).reshape(-1, 4))
                if not overlap.size or overlap.max() < self.match_iou:
                    break
                face = found[offset][int(np.argmax(overlap))]
                edges.setdefault(offset, {})[track] = face
        return edges

    def _between(
        self, position: int, after: _Keyframe, edges: dict[int, dict[int, Face]]
    ) -> list[TrackedFace]:
        """Faces of a frame between the last keyframe and `after`: a track on both keyframes is
        interpolated, one that left or entered between them is where `_edges` followed it."""
        before = self._last
        if before is None:
            return self._faces_at(after, after.faces)
        t = (position - before.position) / (after.position - before.position)
        faces = {
            track: interpolate_faces(face, after.faces[track], t)
            for track, face in before.faces.items()
            if track in after.faces
        }
        faces.update(edges.get(position - before.position - 1, {}))
        main = next((track for track in (before.main, after.main) if track in faces), None)
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
