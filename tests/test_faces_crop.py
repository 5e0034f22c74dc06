"""Main-face choice and face crops (margin, border padding, eye-levelling) on real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emovlm.errors import InputError
from emovlm.faces import Face, crop_box, crop_face, get_face_detector, main_face
from emovlm.faces.crop import eye_angle


def rgb(path) -> np.ndarray:
    """An image file as an RGB uint8 array."""
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def mtcnn():
    return get_face_detector("mtcnn")


@pytest.fixture(scope="module")
def group(asset, mtcnn) -> list[Face]:
    return mtcnn.detect([rgb(asset("feat-multi-face"))])[0]


@pytest.fixture(scope="module")
def astronaut(asset, mtcnn) -> tuple[np.ndarray, Face]:
    image = rgb(asset("astronaut"))
    return image, mtcnn.detect([image])[0][0]


def rounded(face: Face | None) -> list[int] | None:
    return face and [round(v) for v in face.box]


def test_main_face_is_the_largest_without_a_person_box(group):
    chosen = main_face(group)
    assert chosen.area == max(face.area for face in group)
    assert main_face([]) is None


@pytest.mark.parametrize(
    ("person_box", "face_box"),
    [
        # The long-haired girl's body: holds her face and the curly-haired boy's (both wholly),
        # plus 40% of her right-hand neighbour's face: the larger whole face wins.
        ((200, 200, 570, 667), [318, 239, 410, 358]),
        # The curly-haired boy: his face is wholly inside; a third of a larger face also is.
        ((410, 160, 560, 440), [437, 217, 516, 309]),
    ],
)
def test_main_face_picks_the_face_inside_the_person_box(group, person_box, face_box):
    assert rounded(main_face(group, person_box)) == pytest.approx(face_box, abs=3)


def test_main_face_is_none_when_no_face_touches_the_person_box(group):
    assert main_face(group, (0, 480, 160, 667)) is None  # the rock, bottom left


def test_crop_is_a_square_around_the_box_with_the_margin(astronaut):
    image, face = astronaut
    left, top, right, bottom = crop_box(face, margin=0.25)
    side = max(face.width, face.height) * 1.5
    assert right - left == bottom - top == pytest.approx(side, abs=1)
    assert ((left + right) / 2, (top + bottom) / 2) == pytest.approx(face.center, abs=1)
    crop = crop_face(image, face, margin=0.25, align=False)
    assert crop.shape == (bottom - top, right - left, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, image[int(top) : int(bottom), int(left) : int(right)])


def test_crop_resizes_to_the_requested_size(astronaut):
    image, face = astronaut
    assert crop_face(image, face, size=112).shape == (112, 112, 3)
    assert crop_face(image, face, size=(64, 48)).shape == (48, 64, 3)
    assert crop_face(image, face, margin=0.0, size=400).shape == (400, 400, 3)


def test_crop_pads_past_the_border_instead_of_shifting(astronaut):
    image, face = astronaut
    cut = np.ascontiguousarray(image[:, 200:])  # the face now runs off the left edge
    moved = Face((face.box[0] - 200, face.box[1], face.box[2] - 200, face.box[3]), face.score)
    left, top, right, bottom = (int(v) for v in crop_box(moved))
    assert left < 0
    crop = crop_face(cut, moved, align=False)
    assert crop.shape == (bottom - top, right - left, 3)
    assert (crop[:, :-left] == 0).all()  # black where the image has no pixels
    np.testing.assert_array_equal(crop[:, -left:], cut[top:bottom, :right])


def test_alignment_levels_the_eyes_of_a_tilted_face(asset, mtcnn):
    image = rgb(asset("feat-happy"))
    tilted = cv2.warpAffine(image, cv2.getRotationMatrix2D((256, 256), 20, 1.0), (512, 512))
    face = main_face(mtcnn.detect([tilted])[0])
    assert eye_angle(face) == pytest.approx(-20, abs=3)
    aligned, unaligned = (crop_face(tilted, face, size=224, align=a) for a in (True, False))
    refound = mtcnn.detect([aligned, unaligned])
    assert abs(eye_angle(main_face(refound[0]))) < 3
    assert eye_angle(main_face(refound[1])) == pytest.approx(-20, abs=3)


def test_faces_without_landmarks_are_cropped_unrotated(astronaut):
    image, face = astronaut
    plain = Face(face.box, face.score)
    np.testing.assert_array_equal(
        crop_face(image, plain, align=True), crop_face(image, face, align=False)
    )


def test_negative_margin_is_refused(astronaut):
    image, face = astronaut
    with pytest.raises(InputError, match="margin"):
        crop_face(image, face, margin=-0.1)
