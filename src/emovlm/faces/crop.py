"""Square face crops with a margin, optional eye-levelling alignment and resizing."""

from __future__ import annotations

import math

import cv2
import numpy as np

from emovlm.errors import InputError
from emovlm.faces.base import Face
from emovlm.types import Box


def crop_box(face: Face, margin: float = 0.25) -> Box:
    """The square region `crop_face` cuts: centred on the box, side = longer side × (1 + 2·margin).

    The corners are whole pixels and may lie outside the image.
    """
    if margin < 0:
        raise InputError(f"face crop margin must be ≥ 0, got {margin}")
    centre_x, centre_y = face.center
    side = max(1, round(max(face.width, face.height) * (1 + 2 * margin)))
    left, top = round(centre_x - side / 2), round(centre_y - side / 2)
    return float(left), float(top), float(left + side), float(top + side)


def eye_angle(face: Face) -> float:
    """Degrees the line from the image-left eye to the image-right eye slopes downwards."""
    if face.landmarks is None:
        return 0.0
    (left_x, left_y), (right_x, right_y) = face.landmarks[0], face.landmarks[1]
    return math.degrees(math.atan2(right_y - left_y, right_x - left_x))


def crop_face(
    image: np.ndarray,
    face: Face,
    margin: float = 0.25,
    size: int | tuple[int, int] | None = None,
    align: bool = True,
) -> np.ndarray:
    """A square crop of `face` from an (H, W, C) image, as an array of the image's dtype.

    The crop is `crop_box(face, margin)`: the longer box side grown by `margin` of it on each
    side. Where it runs past the image border it is padded with black, never shifted, so the
    face stays centred. With `align` and landmarks, the image is first rotated about the box
    centre so the eyes are level (faces without landmarks are not rotated). `size` resizes the
    crop to size×size pixels, or to (width, height) when a pair.
    """
    left, top, right, _ = crop_box(face, margin)
    side = int(right - left)
    width, height = (
        (side, side) if size is None else (size, size) if isinstance(size, int) else size
    )
    # Warp straight to at most twice the wanted size (the warp costs per output pixel), then
    # shrink the rest of the way with area averaging so small crops do not alias.
    warped = max(1, min(side, 2 * max(width, height)))
    angle = eye_angle(face) if align else 0.0
    warp = cv2.getRotationMatrix2D(face.center, angle, 1.0)
    warp[:, 2] -= (left, top)
    warp *= warped / side
    crop = cv2.warpAffine(
        image,
        warp,
        (warped, warped),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    if (width, height) == (warped, warped):
        return crop
    shrink = width < warped or height < warped
    return cv2.resize(
        crop, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
