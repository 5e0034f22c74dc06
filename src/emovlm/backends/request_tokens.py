"""Estimated tokens of one request: text at four characters a token, visual tokens by family rule.

The family is recognised in the served model's name (e.g. "Qwen/Qwen2.5-VL-7B-Instruct" is
qwen2.5-vl); its processor rule from `visual_tokens` counts images and videos. For a model of
no known family every image and every video frame counts DEFAULT_IMAGE_TOKENS, on the high side
on purpose, so a `--tpm` limit built on it stays under the provider's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from emovlm.backends.visual_tokens import FAMILIES, Family, frames_tokens

CHARS_PER_TOKEN = 4
DEFAULT_IMAGE_TOKENS = 765
"""Tokens per image or video frame for a model of unknown family (a 512-px tile plus overhead
on hosted APIs; more than most open families spend on a 448-px frame)."""

_NAME_PATTERNS = (
    ("qwen2.5-vl", "qwen2.5-vl"),
    ("qwen2-vl", "qwen2-vl"),
    ("llava-onevision", "llava-onevision"),
    ("llava-next-video", "llava-next-video"),
    ("llava-v1.6", "llava-next"),
    ("llava-next", "llava-next"),
    ("llava-1.5", "llava-1.5"),
    ("internvl", "internvl"),
    ("smolvlm", "smolvlm"),
    ("idefics3", "idefics3"),
)


def family_of(model: str) -> Family | None:
    """The VLM family a served model name belongs to, or None when it is not recognised."""
    name = model.lower().replace("_", "-")
    for pattern, family in _NAME_PATTERNS:
        if pattern in name:
            return FAMILIES[family]
    return None


@dataclass(frozen=True)
class Visual:
    """One visual part as sent: `frames` images of height × width, as a video or as images."""

    frames: int
    height: int
    width: int
    as_video: bool


def text_tokens(text: str) -> int:
    """Estimated tokens of a text."""
    return -(-len(text) // CHARS_PER_TOKEN)


def visual_tokens(family: Family | None, visual: Visual) -> int:
    """Estimated visual tokens of one part under the family's rule (or the default)."""
    return _visual_tokens(family.name if family else None, visual)


@lru_cache(maxsize=4096)
def _visual_tokens(family_name: str | None, visual: Visual) -> int:
    if family_name is None:
        return DEFAULT_IMAGE_TOKENS * visual.frames
    family = FAMILIES[family_name]
    if not visual.as_video:
        return visual.frames * family.image(visual.height, visual.width)
    return frames_tokens(family, visual.frames, visual.height, visual.width)


def visual_of(frames: Sequence[np.ndarray], as_video: bool) -> Visual:
    """The Visual of frames as they will be sent."""
    height, width = frames[0].shape[:2]
    return Visual(len(frames), int(height), int(width), as_video and len(frames) > 1)
