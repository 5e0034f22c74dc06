"""Following the main face through a clip: detect on every step-th frame, interpolate between."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emovlm.errors import InputError
from emovlm.faces.base import Face, FaceDetector
from emovlm.faces.select import main_face
from emovlm.types import Box


def keyframe_indices(count: int, step: int) -> list[int]:
    """The frames a tracker runs the detector on: 0, step, 2·step, … and always the last."""
    if step < 1:
        raise InputError(f"face step must be a positive number of frames, got {step}")
    keys = list(range(0, count, step))
    if keys and keys[-1] != count - 1:
        keys.append(count - 1)
    return keys


def interpolate_faces(before: Face, after: Face, t: float) -> Face:
    """The face a fraction `t` of the way from `before` to `after` (box, score and landmarks)."""
    box = tuple((1 - t) * np.asarray(before.box) + t * np.asarray(after.box))
    landmarks = None
    if before.landmarks is not None and after.landmarks is not None:
        landmarks = (1 - t) * before.landmarks + t * after.landmarks
    return Face(box, (1 - t) * before.score + t * after.score, landmarks)


def track_faces(
    frames: Sequence[np.ndarray],
    detector: FaceDetector,
    step: int = 5,
    person_box: Box | None = None,
) -> list[Face | None]:
    """The main face (see `main_face`) in every frame, detecting only on keyframes.

    The detector runs, batched, on every `step`-th frame and the last. A frame between two
    keyframes that both found a face gets the linear interpolation of their boxes, scores and
    landmarks; any other frame (past the first or last hit, or next to a keyframe that found
    nothing) takes the face of the nearest keyframe that found one, the earlier on a tie.
    Frames are None only when no keyframe found a face. `step=1` detects on every frame.
    """
    keys = keyframe_indices(len(frames), step)
    detections = detector.detect([frames[k] for k in keys])
    found = {
        k: face
        for k, faces in zip(keys, detections, strict=True)
        if (face := main_face(faces, person_box))
    }
    if not found:
        return [None] * len(frames)
    hits = np.fromiter(found, dtype=np.int64)
    tracked: list[Face | None] = []
    for index in range(len(frames)):
        position = np.searchsorted(keys, index)
        after = keys[position]
        before = after if after == index else keys[position - 1]
        if before in found and after in found and before != after:
            tracked.append(
                interpolate_faces(found[before], found[after], (index - before) / (after - before))
            )
        else:
            tracked.append(found[int(hits[np.argmin(np.abs(hits - index))])])
    return tracked
