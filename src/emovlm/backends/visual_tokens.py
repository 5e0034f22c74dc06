"""Visual tokens per image, video and clip for VLM families, from their processors' own rules.

No weights are needed: each family's image (and video) processor class is built offline with the
settings of a reference checkpoint's released processor config (the class defaults where they
are the same), and the count follows the rule the family's processor uses to expand its image
placeholder. tests/test_visual_tokens.py checks every family against the real processor's output.
Counts are placeholder tokens the language model reads (image/video pad tokens), not the
delimiters around them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from emovlm.errors import InputError
from emovlm.frames import at_fps, keyframes_with_gaps


@dataclass(frozen=True)
class Family:
    """A VLM family: how many tokens an image (height, width) and a video (frames, h, w) cost.

    `video` is None for families that see a clip's frames as separate images.
    """

    name: str
    reference: str
    image: Callable[[int, int], int]
    video: Callable[[int, int, int], int] | None
    rule: str


def _qwen_image(height: int, width: int) -> int:
    """Qwen2-VL / Qwen2.5-VL: smart_resize to multiples of 28, 14-px patches, 2×2 merged."""
    processor = _processor("Qwen2VLImageProcessor")
    return processor.get_number_of_image_patches(height, width, {}) // processor.merge_size**2


def _qwen_video(frames: int, height: int, width: int) -> int:
    """Qwen2-VL / Qwen2.5-VL video: frames paired in time (temporal patch 2), then as images."""
    processor = _processor("Qwen2VLVideoProcessor")
    return processor.get_num_of_video_patches(frames, height, width, {}) // processor.merge_size**2


def _llava_image(height: int, width: int) -> int:
    """LLaVA-1.5: every image resized and centre-cropped to 336, (336 / 14)² patches."""
    processor = _processor("CLIPImageProcessor")
    crop = processor.crop_size
    return (crop["height"] // _PATCH) * (crop["width"] // _PATCH)


def _llava_next_image(height: int, width: int) -> int:
    """LLaVA-NeXT anyres: a 336 base image plus the best-fitting grid of 336 tiles, unpadded."""
    processor = _processor("LlavaNextImageProcessor")
    return anyres_tokens(
        height, width, tile=336, side=336 // _PATCH, pinpoints=processor.image_grid_pinpoints
    )


def _llava_next_video(frames: int, height: int, width: int) -> int:
    """LLaVA-NeXT-Video: each frame's (336 / 14)² patches average-pooled 2×2."""
    processor = _processor("LlavaNextVideoVideoProcessor")
    crop = processor.crop_size
    return (crop["height"] // _PATCH) * (crop["width"] // _PATCH) // 4 * frames


def _onevision_image(height: int, width: int) -> int:
    """LLaVA-OneVision anyres_max_9: a 384 base image (729 tokens) plus at most ~9 tiles' worth."""
    processor = _processor("LlavaOnevisionImageProcessor")
    return anyres_tokens(
        height,
        width,
        tile=processor.size["height"],
        side=_ONEVISION_SIDE,
        pinpoints=processor.image_grid_pinpoints,
        max_tiles=9,
    )


def _onevision_video(frames: int, height: int, width: int) -> int:
    """LLaVA-OneVision video: each frame's 27×27 patches pooled to 14×14, plus one newline."""
    pooled = math.ceil(_ONEVISION_SIDE / 2)
    return frames * pooled * pooled + 1


def _internvl_image(height: int, width: int) -> int:
    """InternVL: up to 12 tiles of 448 (plus a thumbnail when tiled), 256 tokens per tile."""
    processor = _processor("GotOcr2ImageProcessor")
    return _INTERNVL_TOKENS * processor.get_number_of_image_patches(height, width, {})


def _internvl_video(frames: int, height: int, width: int) -> int:
    """InternVL video: each frame one 448 tile of 256 tokens."""
    return _INTERNVL_TOKENS * frames


def _split_image(processor_name: str, per_patch: int) -> Callable[[int, int], int]:
    """Idefics3 / SmolVLM: the image cut into square patches plus a global view, each a fixed count."""

    def tokens(height: int, width: int) -> int:
        processor = _processor(processor_name)
        patches = processor.get_number_of_image_patches(height, width, {})[0]
        return per_patch * max(1, patches)

    return tokens


def _smolvlm_video(frames: int, height: int, width: int) -> int:
    """SmolVLM2 video: each frame resized to one 384 patch of 81 tokens, no splitting."""
    return _SMOLVLM_TOKENS * frames


_PATCH = 14
_CLIP_336 = {"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}}
_ONEVISION_SIDE = 27  # sqrt of the 729 tokens of a 384 SigLIP image (14-px patches)
_INTERNVL = {"size": {"height": 448, "width": 448}, "crop_to_patches": True, "max_patches": 12}
_INTERNVL_TOKENS = 256
_SMOLVLM = {"size": {"longest_edge": 1536}, "max_image_size": {"longest_edge": 384}}
_SMOLVLM_TOKENS = 81
_IDEFICS3_TOKENS = 169

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "qwen2-vl",
            "Qwen/Qwen2-VL-7B-Instruct",
            _qwen_image,
            _qwen_video,
            "Qwen2VLImageProcessor/Qwen2VLVideoProcessor defaults: smart_resize, patch 14, merge 2, "
            "temporal patch 2",
        ),
        Family(
            "qwen2.5-vl",
            "Qwen/Qwen2.5-VL-7B-Instruct",
            _qwen_image,
            _qwen_video,
            "the Qwen2-VL processors (same rule and defaults)",
        ),
        Family(
            "llava-1.5",
            "llava-hf/llava-1.5-7b-hf",
            _llava_image,
            None,
            "CLIP 336 crop, 576 tokens per image; video frames as images",
        ),
        Family(
            "llava-next",
            "llava-hf/llava-v1.6-mistral-7b-hf",
            _llava_next_image,
            None,
            "anyres grid of 336 tiles + base image, unpadded, one newline per row; frames as images",
        ),
        Family(
            "llava-next-video",
            "llava-hf/LLaVA-NeXT-Video-7B-hf",
            _llava_next_image,
            _llava_next_video,
            "images as LLaVA-NeXT; video frames 576 patches pooled 2×2 = 144 each",
        ),
        Family(
            "llava-onevision",
            "llava-hf/llava-onevision-qwen2-7b-ov-hf",
            _onevision_image,
            _onevision_video,
            "anyres_max_9 over 384 tiles (729 per tile); video 196 per frame + 1",
        ),
        Family(
            "internvl",
            "OpenGVLab/InternVL3-8B-hf",
            _internvl_image,
            _internvl_video,
            "dynamic tiling, up to 12 tiles of 448 + thumbnail, 256 per tile; video 256 per frame",
        ),
        Family(
            "smolvlm",
            "HuggingFaceTB/SmolVLM2-2.2B-Instruct",
            _split_image("SmolVLMImageProcessor", _SMOLVLM_TOKENS),
            _smolvlm_video,
            "384-px patches (image longest side ≤ 1536) + global image, 81 per patch; video 81 per frame",
        ),
        Family(
            "idefics3",
            "HuggingFaceM4/Idefics3-8B-Llama3",
            _split_image("Idefics3ImageProcessor", _IDEFICS3_TOKENS),
            None,
            "364-px patches (image longest side ≤ 1456) + global image, 169 per patch; frames as images",
        ),
    )
}
"""Families by the name `emovlm tokens --family` takes."""


_SETTINGS: dict[str, dict[str, Any]] = {
    "CLIPImageProcessor": _CLIP_336,
    "LlavaNextImageProcessor": _CLIP_336,
    "LlavaNextVideoVideoProcessor": _CLIP_336,
    "GotOcr2ImageProcessor": _INTERNVL,
    "SmolVLMImageProcessor": _SMOLVLM,
}
"""Reference checkpoints' processor settings where they differ from the class defaults."""


@cache
def _processor(name: str) -> Any:
    """A transformers image or video processor class, built once with its family's settings."""
    import transformers

    return getattr(transformers, name)(**_SETTINGS.get(name, {}))


def anyres_tokens(
    height: int,
    width: int,
    *,
    tile: int,
    side: int,
    pinpoints: Sequence[Sequence[int]],
    max_tiles: int | None = None,
) -> int:
    """Tokens of an anyres image: base image (side²) + the best grid of tiles, unpadded, + newlines.

    The grid is the pinpoint resolution that keeps the most of the image (transformers'
    select_best_resolution); the rows and columns that only hold padding are dropped; with
    `max_tiles` the grid's features are scaled down to about that many tiles' worth.
    """
    from transformers.image_processing_utils import select_best_resolution

    best_height, best_width = select_best_resolution([height, width], pinpoints)
    rows, columns = side * (best_height // tile), side * (best_width // tile)
    if width / height > columns / rows:
        padding = (rows - int(round(height * (columns / width), 7))) // 2
        rows -= 2 * padding
    else:
        padding = (columns - int(round(width * (rows / height), 7))) // 2
        columns -= 2 * padding
    features, newlines = rows * columns, rows
    if max_tiles is not None:
        ratio = math.sqrt(rows * columns / (max_tiles * side**2))
        if ratio > 1.1:
            features = int(rows // ratio) * int(columns // ratio)
            newlines = int(rows // ratio)
    return features + newlines + side * side


def get_family(name: str) -> Family:
    """A family by name, or an InputError listing the known ones."""
    if name not in FAMILIES:
        raise InputError(f"unknown VLM family {name!r}; choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def frames_tokens(family: Family, frames: int, height: int, width: int) -> int:
    """Tokens of a clip's frames sent as one video (or as images where the family has no video)."""
    if frames == 0:
        return 0
    if frames == 1 or family.video is None:
        return frames * family.image(height, width)
    return family.video(frames, height, width)


def fitted(height: int, width: int, longest: int | None) -> tuple[int, int]:
    """The size emovlm sends: shrunk so the longest side is at most `longest` (as fit_within)."""
    if not longest or max(height, width) <= longest:
        return height, width
    scale = longest / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass(frozen=True)
class TokenRow:
    """One line of a token table: a sampling setting, its frames, calls and visual tokens."""

    setting: str
    frames: int
    calls: int
    tokens: dict[str, int]


def token_table(
    families: Sequence[str],
    *,
    height: int,
    width: int,
    duration: float,
    source_fps: float,
    rates: Sequence[float],
    keyframes: int | None = None,
    per_gap: int = 4,
    image_size: int | None = 448,
) -> list[TokenRow]:
    """Visual tokens per clip for each family: dense sampling at each rate, and MSCE's plan.

    The clip has round(duration · source_fps) frames of height × width, shrunk to `image_size` as
    emovlm's VLM recognizers send them. Dense sampling sends its frames as one video; MSCE sends
    the keyframes as images in one call and each gap's in-between frames as a video in a call of
    their own (VLM describer) or none (specialist describer).
    """
    chosen = [get_family(name) for name in families]
    frame_count = max(1, round(duration * source_fps))
    h, w = fitted(height, width, image_size)
    rows = []
    for rate in rates:
        n = len(at_fps(frame_count, source_fps, rate))
        rows.append(
            TokenRow(f"fps:{rate:g}", n, 1, {f.name: frames_tokens(f, n, h, w) for f in chosen})
        )
    if keyframes:
        plan = keyframes_with_gaps(frame_count, keyframes, per_gap)
        k = len(plan.keyframes)
        gaps = [len(gap) for gap in plan.gaps if gap]
        stage2 = {f.name: k * f.image(h, w) for f in chosen}
        describe = {f.name: sum(frames_tokens(f, n, h, w) for n in gaps) for f in chosen}
        dense = len(plan.indices)
        rows += [
            TokenRow(f"msce:{keyframes}x{per_gap}/specialist", k, 1, stage2),
            TokenRow(
                f"msce:{keyframes}x{per_gap}/vlm",
                dense,
                1 + len(gaps),
                {name: stage2[name] + describe[name] for name in stage2},
            ),
            TokenRow(
                f"uniform:{dense}",
                dense,
                1,
                {f.name: frames_tokens(f, dense, h, w) for f in chosen},
            ),
        ]
    return rows
