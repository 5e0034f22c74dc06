"""Small JPEG thumbnails of what a model saw, bounded in size, kept with each prediction.

Recognizers put them in `Prediction.extra["thumbnails"]` as a list of
{"caption": str, "jpeg": base64 str}; the run store moves them into its `thumbnails` table.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from emovlm.errors import InputError

EXTRA_KEY = "thumbnails"
"""The key of Prediction.extra that carries a sample's thumbnails to the store."""

MAX_SIDE = 128
"""Longest side of a thumbnail in pixels."""

QUALITY = 70
"""JPEG quality of thumbnails."""

MAX_PER_SAMPLE = 4
"""Thumbnails kept per sample by default (taken evenly when a recognizer offers more)."""

MAX_JPEG_BYTES = 24_000
"""Largest thumbnail the store accepts; a bigger one is dropped (128 px JPEGs are ~3-6 kB)."""


def jpeg_thumbnail(image: np.ndarray, max_side: int = MAX_SIDE, quality: int = QUALITY) -> bytes:
    """JPEG bytes of an RGB (H, W, 3) or grey (H, W) uint8 image shrunk to `max_side` pixels."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or 0 in array.shape[:2]:
        raise ValueError(
            f"a thumbnail needs a non-empty (H, W[, 3]) uint8 image, got {array.dtype} {array.shape}"
        )
    picture = Image.fromarray(array).convert("RGB")
    picture.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def thumbnail_entries(
    images: Sequence[tuple[str, np.ndarray]], count: int = MAX_PER_SAMPLE
) -> list[dict[str, str]]:
    """Up to `count` (caption, image) pairs, taken evenly, as entries for extra["thumbnails"]."""
    return [
        {"caption": caption, "jpeg": base64.b64encode(jpeg_thumbnail(image)).decode("ascii")}
        for caption, image in evenly(images, count)
    ]


def evenly(items: Sequence[Any], count: int) -> list[Any]:
    """At most `count` of `items`, spread evenly from first to last."""
    if count <= 0 or not items:
        return []
    if len(items) <= count:
        return list(items)
    step = (len(items) - 1) / max(count - 1, 1)
    return [items[round(i * step)] for i in range(count)] if count > 1 else [items[0]]


def decode_entries(
    value: Any, sample_id: str, count: int = MAX_PER_SAMPLE
) -> list[tuple[str, bytes]]:
    """The (caption, JPEG bytes) pairs of an extra["thumbnails"] value, at most `count` of them.

    Oversized thumbnails are dropped; a malformed value is an error naming the sample.
    """
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise InputError(
            f"sample {sample_id!r}: extra['thumbnails'] must be a list of "
            '{"caption": ..., "jpeg": base64} entries (use emovlm.thumbnails.thumbnail_entries)'
        )
    pairs = []
    for entry in value:
        try:
            caption, data = (
                str(entry.get("caption", "")),
                base64.b64decode(entry["jpeg"], validate=True),
            )
        except (AttributeError, KeyError, TypeError, binascii.Error) as exc:
            raise InputError(
                f"sample {sample_id!r}: a thumbnail entry is not "
                f'{{"caption": ..., "jpeg": base64}} ({exc})'
            ) from exc
        if len(data) <= MAX_JPEG_BYTES:
            pairs.append((caption, data))
    return evenly(pairs, count)
