"""Face detectors on real photos: MTCNN with its published weights, OpenCV's Haar, "none"."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emovlm.errors import InputError, MissingDependencyError
from emovlm.faces import FACE_DETECTORS, Face, FaceDetector, get_face_detector
from emovlm.faces import haar as haar_module
from emovlm.faces.boxes import nms

ASTRONAUT_FACE = (177, 58, 267, 174)  # found by eye and by MTCNN: hairline to chin, ear to ear


def rgb(path) -> np.ndarray:
    """An image file as an RGB uint8 array."""
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def iou(a, b) -> float:
    """Intersection over union of two boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0) * max(height, 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def mtcnn() -> FaceDetector:
    return get_face_detector("mtcnn")


@pytest.fixture(scope="module")
def photos(asset) -> dict[str, np.ndarray]:
    names = ["astronaut", "feat-single-face", "feat-multi-face", "feat-happy", "feat-surprise"]
    return {name: rgb(asset(name)) for name in [*names, "feat-no-face"]}


@pytest.fixture(scope="module")
def mtcnn_faces(mtcnn, photos) -> dict[str, list[Face]]:
    return dict(zip(photos, mtcnn.detect(list(photos.values())), strict=True))


def test_mtcnn_finds_exactly_the_astronauts_face(mtcnn_faces):
    (face,) = mtcnn_faces["astronaut"]
    assert face.box == pytest.approx(ASTRONAUT_FACE, abs=6)
    assert face.score > 0.99


@pytest.mark.parametrize("name", ["feat-single-face", "feat-happy", "feat-surprise"])
def test_mtcnn_finds_the_one_face_of_posed_photos(mtcnn_faces, photos, name):
    (face,) = mtcnn_faces[name]
    height, width = photos[name].shape[:2]
    assert face.score > 0.99
    assert 0.25 * width < face.width < 0.75 * width  # close-ups: the face fills much of the frame


def test_mtcnn_finds_all_five_people_of_the_group_photo(mtcnn_faces):
    faces = mtcnn_faces["feat-multi-face"]
    assert len(faces) == 5  # five young people, one in sunglasses
    assert all(face.score > 0.99 for face in faces)
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    boxes = np.array([face.box for face in faces])
    assert len(nms(boxes, np.ones(5), 0.1)) == 5  # five separate faces, no duplicates


def test_mtcnn_finds_no_face_in_a_mountain_drawing(mtcnn_faces):
    assert mtcnn_faces["feat-no-face"] == []


@pytest.mark.parametrize("name", ["astronaut", "feat-multi-face", "feat-happy", "feat-surprise"])
def test_landmarks_sit_where_the_face_parts_are(mtcnn_faces, name):
    for face in mtcnn_faces[name]:
        points = face.landmarks
        assert points.shape == (5, 2) and not points.flags.writeable
        x1, y1, x2, y2 = face.box
        assert ((points[:, 0] > x1) & (points[:, 0] < x2)).all()
        assert ((points[:, 1] > y1) & (points[:, 1] < y2)).all()
        left_eye, right_eye, nose, mouth_left, mouth_right = points
        assert left_eye[0] < nose[0] < right_eye[0]  # "left" is image-left
        assert mouth_left[0] < mouth_right[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_mtcnn_batch_mixes_image_sizes_and_matches_single_calls(mtcnn, photos, mtcnn_faces):
    names = ["feat-multi-face", "astronaut", "feat-single-face", "feat-happy"]
    batched = mtcnn.detect([photos[n] for n in names])
    for name, faces in zip(names, batched, strict=True):
        expected = mtcnn_faces[name]
        assert len(faces) == len(expected)
        for got, want in zip(faces, expected, strict=True):
            assert got.box == pytest.approx(want.box, abs=1e-3)


def test_mtcnn_handles_empty_batches_and_images_smaller_than_a_face(mtcnn):
    assert mtcnn.detect([]) == []
    assert mtcnn.detect([np.zeros((15, 40, 3), np.uint8)]) == [[]]


def test_mtcnn_keeps_faces_cut_by_the_border_unclipped(mtcnn, photos):
    shifted = photos["astronaut"][:, 200:]  # cut through the face's middle
    (face,) = mtcnn.detect([np.ascontiguousarray(shifted)])[0]
    assert face.box[0] < 0 < face.box[2]


def test_min_face_size_setting_skips_much_smaller_faces(photos):
    big_only = get_face_detector("mtcnn", min_face_size=250)
    assert big_only.detect([photos["feat-multi-face"]]) == [[]]  # its faces are 80-130 px
    assert len(big_only.detect([photos["feat-happy"]])[0]) == 1  # this one is ~270×360 px


def test_detectors_reject_non_rgb_input(mtcnn):
    with pytest.raises(InputError, match="RGB uint8"):
        mtcnn.detect([np.zeros((64, 64), np.uint8)])
    with pytest.raises(InputError, match="RGB uint8"):
        get_face_detector("none").detect([np.zeros((64, 64, 3), np.float32)])


def test_haar_finds_the_astronauts_face_without_landmarks(photos):
    haar = get_face_detector("haar")
    (face,) = haar.detect([photos["astronaut"]])[0]
    assert iou(face.box, ASTRONAUT_FACE) > 0.6
    assert face.landmarks is None and face.score >= 1
    assert haar.detect([photos["feat-no-face"]]) == [[]]


def test_haar_names_the_fix_when_opencv_ships_no_cascades(monkeypatch):
    monkeypatch.setattr(haar_module.cv2, "data", None, raising=False)
    with pytest.raises(MissingDependencyError, match="opencv-python-headless<5"):
        haar_module.HaarDetector()


def test_none_detector_returns_the_whole_image(photos):
    (faces,) = get_face_detector("none").detect([photos["feat-single-face"]])
    assert [face.box for face in faces] == [(0.0, 0.0, 572.0, 562.0)]
    assert faces[0].score == 1.0 and faces[0].landmarks is None


def test_registry_builds_each_detector_once_and_names_the_choices():
    assert FACE_DETECTORS.names() == ["mtcnn", "haar", "none"]
    assert get_face_detector("mtcnn") is get_face_detector("mtcnn", "cpu")
    assert get_face_detector("mtcnn", thresholds=[0.6, 0.7, 0.8]) is get_face_detector(
        "mtcnn", thresholds=(0.6, 0.7, 0.8)
    )
    assert get_face_detector("mtcnn") is not get_face_detector("mtcnn", min_face_size=40)
    assert all(isinstance(get_face_detector(n), FaceDetector) for n in FACE_DETECTORS.names())
    with pytest.raises(InputError, match="mtcnn, haar, none"):
        get_face_detector("retinaface")
