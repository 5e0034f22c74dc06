"""Tracking the main face through a real video: keyframe detection plus interpolation."""

from __future__ import annotations

import av
import numpy as np
import pytest

from emovlm.errors import InputError
from emovlm.faces import get_face_detector, main_face, track_faces
from emovlm.faces.track import keyframe_indices


def decode(path, limit: int | None = None) -> list[np.ndarray]:
    """The first `limit` (or all) frames of a video as RGB uint8 arrays."""
    with av.open(str(path)) as container:
        frames = (frame.to_ndarray(format="rgb24") for frame in container.decode(video=0))
        return [frame for _, frame in zip(range(limit or 10**9), frames, strict=False)]


@pytest.fixture(scope="module")
def mtcnn():
    return get_face_detector("mtcnn")


@pytest.fixture(scope="module")
def frames(asset) -> list[np.ndarray]:
    # The first 41 of 72 frames (640×360) of one talking face: 1.4 s of head motion.
    return decode(asset("feat-video-single-face"), limit=41)


@pytest.fixture(scope="module")
def per_frame(frames, mtcnn) -> np.ndarray:
    """Boxes of the main face detected on every frame."""
    return np.array([main_face(faces).box for faces in mtcnn.detect(frames)])


@pytest.fixture(scope="module")
def tracked(frames, mtcnn) -> list:
    return track_faces(frames, mtcnn, step=5)


def boxes(tracked) -> np.ndarray:
    return np.array([face.box for face in tracked])


def test_keyframes_are_every_step_and_the_last():
    assert keyframe_indices(12, 5) == [0, 5, 10, 11]
    assert keyframe_indices(11, 5) == [0, 5, 10]
    assert keyframe_indices(1, 5) == [0]
    assert keyframe_indices(0, 5) == []
    with pytest.raises(InputError, match="face step"):
        keyframe_indices(10, 0)


def test_tracked_boxes_follow_per_frame_detection(frames, tracked, per_frame):
    assert len(tracked) == len(frames) and all(face is not None for face in tracked)
    got = boxes(tracked)
    for key in keyframe_indices(len(frames), 5):
        np.testing.assert_allclose(got[key], per_frame[key], atol=0.5)
    widths = per_frame[:, 2] - per_frame[:, 0]
    error = np.abs(got - per_frame).max(axis=1) / widths
    assert error.max() < 0.1 and error.mean() < 0.03
    assert np.abs(np.diff(got, axis=0)).max() < 10  # continuous: no jumps between frames


def test_frames_between_keyframes_are_linear_blends(tracked):
    expected = 0.6 * np.asarray(tracked[0].box) + 0.4 * np.asarray(tracked[5].box)
    np.testing.assert_allclose(tracked[2].box, expected)
    np.testing.assert_allclose(
        tracked[2].landmarks, 0.6 * tracked[0].landmarks + 0.4 * tracked[5].landmarks
    )


def test_a_keyframe_without_a_face_borrows_the_nearest_found_face(frames, asset, mtcnn):
    (blank,) = decode(asset("feat-video-no-face"), limit=1)
    edited = list(frames[:21])
    edited[10] = np.ascontiguousarray(blank[:360, :640])  # a faceless frame at keyframe 10
    tracked = track_faces(edited, mtcnn, step=5)
    for index in (6, 7, 8, 9, 10):  # nearest found keyframe is 5 (ties go to the earlier)
        assert tracked[index] is tracked[5]
    for index in (11, 12, 13, 14):
        assert tracked[index] is tracked[15]


def test_no_face_anywhere_gives_none_for_every_frame(asset, mtcnn):
    frames = decode(asset("feat-video-no-face"), limit=12)
    assert track_faces(frames, mtcnn, step=5) == [None] * 12
    assert track_faces([], mtcnn) == []


def test_step_one_is_per_frame_detection(frames, mtcnn, per_frame):
    tracked = track_faces(frames[:12], mtcnn, step=1)
    np.testing.assert_allclose(boxes(tracked), per_frame[:12], atol=0.5)


def test_person_box_restricts_tracking_to_faces_inside_it(frames, mtcnn):
    assert track_faces(frames[:6], mtcnn, step=5, person_box=(0, 0, 150, 360)) == [None] * 6
    inside = track_faces(frames[:6], mtcnn, step=5, person_box=(150, 0, 450, 360))
    assert all(face is not None for face in inside)
