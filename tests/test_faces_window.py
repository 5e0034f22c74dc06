"""Window searches: MTCNN looking only near a known face, and the tracker's periodic full searches.

Real frames of the shipped Pexels face video and real face photos, composited; nothing mocked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from emovlm.errors import InputError
from emovlm.faces.mtcnn import MTCNNDetector
from emovlm.faces.stream import FaceTracker
from emovlm.types import Frame
from emovlm.video import iter_frames, load_image
from test_faces_detect import iou


@pytest.fixture(scope="module")
def mtcnn() -> MTCNNDetector:
    return MTCNNDetector()


def largest(faces):
    return max(faces, key=lambda face: face.area)


def test_a_window_search_finds_the_face_a_full_search_finds(mtcnn, asset) -> None:
    frames = [frame.image for frame in iter_frames(asset("feat-video-pexels"))][::60]
    assert len(frames) == 8
    for image in frames:
        full = largest(mtcnn.detect([image])[0])
        side = max(full.width, full.height)
        x, y = (full.box[0] + full.box[2]) / 2, (full.box[1] + full.box[3]) / 2
        window = (int(x - side), int(y - side), int(x + side), int(y + side))
        found = mtcnn.detect([image], face_range=(side / 2, side * 2), windows=[window])[0]
        assert len(found) == 1 and iou(found[0].box, full.box) >= 0.85


def test_window_boxes_are_in_image_coordinates(mtcnn, asset) -> None:
    photo = load_image(asset("astronaut"))
    padded = np.zeros((photo.shape[0] + 70, photo.shape[1] + 130, 3), np.uint8)
    padded[70:, 130:] = photo  # the photo moved right and down, black around it
    alone = mtcnn.detect([photo], face_range=(60, 400))[0]
    window = (130, 70, padded.shape[1], padded.shape[0])
    moved = mtcnn.detect([padded], face_range=(60, 400), windows=[window])[0]
    assert len(alone) == len(moved) == 1
    assert np.allclose(np.add(alone[0].box, (130, 70, 130, 70)), moved[0].box)
    assert np.allclose(alone[0].landmarks + (130, 70), moved[0].landmarks)
    elsewhere = mtcnn.detect([padded], face_range=(60, 400), windows=[(0, 0, 120, 120)])[0]
    assert elsewhere == []  # nothing is looked for outside the window


def scene(width: int, height: int, faces) -> np.ndarray:
    """A grey frame with face photos pasted at their (x, y) corners."""
    image = np.full((height, width, 3), 128, np.uint8)
    for picture, x, y in faces:
        image[y : y + picture.shape[0], x : x + picture.shape[1]] = picture
    return image


def face(asset: Callable[[str], Path], name: str, size: int) -> np.ndarray:
    return cv2.resize(load_image(asset(name)), (size, size), interpolation=cv2.INTER_AREA)


def track(tracker: FaceTracker, images: list[np.ndarray]) -> list:
    """The tracker's main face per frame, fed in chunks of 16 frames."""
    frames = [Frame(image, i / 25, i) for i, image in enumerate(images)]
    settled = []
    for start in range(0, len(frames), 16):
        settled += tracker.feed(frames[start : start + 16])
    return [faces for _, faces in settled + tracker.finish()]


def test_a_face_entering_elsewhere_is_found_by_the_periodic_full_search(mtcnn, asset) -> None:
    small, large = face(asset, "feat-happy", 80), face(asset, "feat-surprise", 120)
    first = [scene(480, 200, [(small, 20, 60)])] * 30
    both = [scene(480, 200, [(small, 20, 60), (large, 330, 40)])] * 50
    images = first + both  # keyframes every 5 frames: 0, 5, …, 75, and the last (79)
    periodic = FaceTracker(mtcnn, 5, full_every=4)
    main = track(periodic, images)
    assert periodic.n_detected == 17 and periodic.n_full == 5 and periodic.n_window == 12
    right = [bool(faces) and faces[0].face.box[0] > 240 for faces in main]
    assert not any(right[:30])  # the small face alone, searched in its window
    assert all(right[40:])  # keyframe 8 (frame 40) searched in full: the larger face is main
    never = FaceTracker(mtcnn, 5, full_every=1000)
    main = track(never, images)
    assert never.n_full == 1 and never.n_window == 16
    assert not any(faces[0].face.box[0] > 240 for faces in main)  # windows never see it


def test_all_faces_and_no_narrowing_search_every_keyframe_in_full(mtcnn, asset) -> None:
    small = face(asset, "feat-happy", 80)
    images = [scene(320, 160, [(small, 20, 40)])] * 20
    for tracker in (FaceTracker(mtcnn, 5, all_faces=True), FaceTracker(mtcnn, 5, narrow=False)):
        assert all(faces for faces in track(tracker, images))
        assert tracker.n_full == tracker.n_detected == 5 and tracker.n_window == 0


def test_a_bad_full_search_interval_is_refused(mtcnn) -> None:
    with pytest.raises(InputError, match="full face search interval"):
        FaceTracker(mtcnn, 5, full_every=0)
