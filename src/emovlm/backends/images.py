"""Image helpers for VLM requests: resizing, JPEG data URLs, and showing a person by box or crop."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from PIL import Image, ImageDraw

from emovlm.errors import MediaError
from emovlm.types import Box

RED = (255, 0, 0)


def fit_within(image: np.ndarray, size: int) -> np.ndarray:
    """Shrink an RGB image so its longest side is at most `size` pixels, keeping its aspect ratio."""
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= size:
        return image
    scale = size / longest
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(new_size, Image.Resampling.BICUBIC))


def jpeg_data_url(image: np.ndarray, quality: int = 90) -> str:
    """An RGB uint8 image as a base64 JPEG `data:` URL, as OpenAI-compatible servers accept."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).convert("RGB").save(
        buffer, format="JPEG", quality=quality
    )
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _clamped(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    left, top = max(0, int(round(x1))), max(0, int(round(y1)))
    right, bottom = min(width - 1, int(round(x2))), min(height - 1, int(round(y2)))
    return left, top, max(left, right), max(top, bottom)


def draw_box(image: np.ndarray, box: Box, color: tuple[int, int, int] = RED) -> np.ndarray:
    """A copy of the image with a box outline drawn on it (width ~0.5% of the image, at least 2 px)."""
    height, width = image.shape[:2]
    canvas = Image.fromarray(image).convert("RGB")
    line = max(2, round(0.005 * max(height, width)))
    ImageDraw.Draw(canvas).rectangle(_clamped(box, width, height), outline=color, width=line)
    return np.asarray(canvas)


def crop_box(image: np.ndarray, box: Box, margin: float = 0.1) -> np.ndarray:
    """The part of the image inside the box (x2, y2 exclusive), widened by `margin` of its size per side."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    left, top = max(0, math.floor(x1 - dx)), max(0, math.floor(y1 - dy))
    right, bottom = min(width, math.ceil(x2 + dx)), min(height, math.ceil(y2 + dy))
    if right <= left or bottom <= top:
        raise MediaError(f"person box {box} lies outside the {width}×{height} image")
    return image[top:bottom, left:right].copy()
