"""Visual-token accounting checked against the real transformers processors and a tiny Qwen2-VL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import transformers as T
from transformers import PreTrainedTokenizerFast

from emovlm.backends.images import fit_within
from emovlm.backends.visual_tokens import FAMILIES, fitted, frames_tokens, token_table
from emovlm.backends.vlm import GenerationSettings, VideoInput, VLMRequest
from emovlm.errors import InputError
from emovlm.frames import at_fps, keyframes_with_gaps
from emovlm.video import load_image, read_frames
from tiny_models import build_tiny_qwen2_vl, tiny_tokenizer

os.environ["HF_HUB_OFFLINE"] = "1"
SIZES = [(360, 640), (640, 360), (448, 448), (100, 800), (1080, 1920), (200, 150)]
CLIP_336 = {"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}}


@pytest.fixture(scope="module")
def images(asset: Callable[[str], Path]) -> list[np.ndarray]:
    """Real photos and video frames at their own size and as emovlm sends them, plus odd sizes."""
    photo = load_image(asset("astronaut"))
    frame = read_frames(asset("feat-video-pexels"), [0]).frames[0].image
    real = [photo, frame, fit_within(frame, 448)]
    return real + [np.zeros((h, w, 3), np.uint8) for h, w in SIZES]


def tokenizer(*specials: str, **named: str) -> PreTrainedTokenizerFast:
    """A tiny real tokenizer with these special tokens (and named ones such as image_token)."""
    core = tiny_tokenizer((*specials, *named.values(), "<pad>"), vocab_size=300)
    return PreTrainedTokenizerFast(tokenizer_object=core._tokenizer, extra_special_tokens=named)


def placeholders(processor: object, token: str, **inputs: object) -> int:
    """How many `token`s the processor put into the prompt for these inputs."""
    ids = np.asarray(processor(**inputs)["input_ids"][0])  # type: ignore[operator]
    return int((ids == processor.tokenizer.convert_tokens_to_ids(token)).sum())  # type: ignore[attr-defined]


def size(image: np.ndarray) -> tuple[int, int]:
    return image.shape[0], image.shape[1]


def test_qwen2_vl_counts_equal_the_processors_grids(images: list[np.ndarray]) -> None:
    image_processor, video_processor = T.Qwen2VLImageProcessor(), T.Qwen2VLVideoProcessor()
    for family in ("qwen2-vl", "qwen2.5-vl"):
        for image in images:
            grid = image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0]
            assert FAMILIES[family].image(*size(image)) == grid.prod().item() // 4
            for frames in (1, 2, 5):
                video = np.stack([image] * frames)
                grid = video_processor(videos=[video], return_tensors="pt")["video_grid_thw"][0]
                assert FAMILIES[family].video(frames, *size(image)) == grid.prod().item() // 4


def test_llava_families_count_what_their_processors_expand(images: list[np.ndarray]) -> None:
    tok = tokenizer("<image>", "<video>")
    llava = T.LlavaProcessor(
        image_processor=T.CLIPImageProcessor(**CLIP_336),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    settings = {
        "tokenizer": tok,
        "patch_size": 14,
        "vision_feature_select_strategy": "default",
        "num_additional_image_tokens": 1,
    }
    next_ = T.LlavaNextProcessor(image_processor=T.LlavaNextImageProcessor(**CLIP_336), **settings)
    next_video = T.LlavaNextVideoProcessor(
        video_processor=T.LlavaNextVideoVideoProcessor(**CLIP_336),
        image_processor=T.LlavaNextImageProcessor(**CLIP_336),
        **settings,
    )
    onevision = T.LlavaOnevisionProcessor(
        image_processor=T.LlavaOnevisionImageProcessor(),
        video_processor=T.LlavaOnevisionVideoProcessor(),
        tokenizer=tok,
        num_image_tokens=729,
        vision_feature_select_strategy="full",
    )
    for image in images:
        shape = size(image)
        one = {"text": "<image>", "images": [image]}
        assert FAMILIES["llava-1.5"].image(*shape) == placeholders(llava, "<image>", **one) == 576
        assert FAMILIES["llava-next"].image(*shape) == placeholders(next_, "<image>", **one)
        assert FAMILIES["llava-next-video"].image(*shape) == placeholders(next_, "<image>", **one)
        assert FAMILIES["llava-onevision"].image(*shape) == placeholders(
            onevision, "<image>", **one
        )
    video = {"text": "<video>", "videos": [np.stack([images[1]] * 5)]}
    assert FAMILIES["llava-next-video"].video(5, *size(images[1])) == placeholders(
        next_video, "<video>", **video
    )
    assert FAMILIES["llava-onevision"].video(5, *size(images[1])) == placeholders(
        onevision, "<video>", **video
    )


def test_internvl_counts_tiles_as_its_processor_does(images: list[np.ndarray]) -> None:
    processor = T.InternVLProcessor(
        image_processor=T.GotOcr2ImageProcessor(
            size={"height": 448, "width": 448}, crop_to_patches=True, max_patches=12
        ),
        video_processor=T.InternVLVideoProcessor(size={"height": 448, "width": 448}),
        tokenizer=tokenizer(
            start_image_token="<img>",
            end_image_token="</img>",
            context_image_token="<IMG_CONTEXT>",
            video_token="<video>",
        ),
        image_seq_length=256,
    )
    for image in images:
        inputs = {"text": "<IMG_CONTEXT>", "images": [image]}
        assert FAMILIES["internvl"].image(*size(image)) == placeholders(
            processor, "<IMG_CONTEXT>", **inputs
        )
    video = {"text": "<video>", "videos": [np.stack([images[1]] * 3)]}
    assert FAMILIES["internvl"].video(3, *size(images[1])) == placeholders(
        processor, "<IMG_CONTEXT>", **video
    )


def test_idefics3_and_smolvlm_count_patches_as_their_processors(images: list[np.ndarray]) -> None:
    idefics3 = T.Idefics3Processor(
        image_processor=T.Idefics3ImageProcessor(),
        tokenizer=tokenizer(
            "<fake_token_around_image>", "<global-img>", "<end_of_utterance>", image_token="<image>"
        ),
        image_seq_len=169,
    )
    smolvlm = T.SmolVLMImageProcessor(
        size={"longest_edge": 1536}, max_image_size={"longest_edge": 384}
    )
    for image in images:
        shape = size(image)
        inputs = {"text": "<image>", "images": [[image]]}
        assert FAMILIES["idefics3"].image(*shape) == placeholders(idefics3, "<image>", **inputs)
        patches = smolvlm(images=[[image]], return_tensors="pt")["pixel_values"].shape[1]
        assert FAMILIES["smolvlm"].image(*shape) == 81 * patches
    frames = T.SmolVLMVideoProcessor()(videos=[np.stack([images[1]] * 4)], return_tensors="pt")
    assert FAMILIES["smolvlm"].video(4, *size(images[1])) == 81 * frames["pixel_values"].shape[1]


def test_counts_equal_what_a_tiny_qwen2_vl_backend_reads(tmp_path: Path) -> None:
    from emovlm.backends.transformers_vlm import TransformersVLM

    vlm = TransformersVLM(str(build_tiny_qwen2_vl(tmp_path / "qwen")))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    frames = tuple(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3))
    request = VLMRequest((image, VideoInput(frames, fps=5.0), "Which emotion?"))
    (answer,) = vlm.generate([request], GenerationSettings(max_new_tokens=1))
    family = FAMILIES["qwen2-vl"]
    assert answer.cost.visual_tokens == family.image(90, 160) + family.video(3, 64, 64)


def test_the_table_has_a_row_per_rate_and_msce_rows_from_the_plan() -> None:
    rows = token_table(
        ["qwen2-vl", "llava-1.5"],
        height=360,
        width=640,
        duration=3.0,
        source_fps=30.0,
        rates=[1, 5, 30],
        keyframes=8,
        per_gap=4,
    )
    h, w = fitted(360, 640, 448)
    assert (h, w) == (252, 448)
    assert [r.setting for r in rows[:3]] == ["fps:1", "fps:5", "fps:30"]
    assert [r.frames for r in rows[:3]] == [len(at_fps(90, 30.0, r)) for r in (1, 5, 30)]
    qwen = FAMILIES["qwen2-vl"]
    assert rows[1].tokens == {
        "qwen2-vl": qwen.video(15, h, w),
        "llava-1.5": 15 * 576,  # no video processor: every frame is an image
    }
    specialist, described, dense = rows[3:]
    plan = keyframes_with_gaps(90, 8, 4)
    assert specialist.tokens["qwen2-vl"] == 8 * qwen.image(h, w) and specialist.calls == 1
    gaps = sum(qwen.video(len(gap), h, w) for gap in plan.gaps)
    assert described.tokens["qwen2-vl"] == 8 * qwen.image(h, w) + gaps
    assert described.calls == 8 and described.frames == dense.frames == len(plan.indices) == 36
    assert dense.tokens["llava-1.5"] == 36 * 576
    assert frames_tokens(qwen, 1, h, w) == qwen.image(h, w) and frames_tokens(qwen, 0, h, w) == 0
    with pytest.raises(InputError, match="unknown VLM family 'gpt'"):
        token_table(["gpt"], height=1, width=1, duration=1, source_fps=1, rates=[1])


def test_the_tokens_command_prints_json_rows() -> None:
    command = [sys.executable, "-m", "emovlm", "tokens", "--family", "qwen2-vl,internvl"]
    command += ["--width", "640", "--height", "360", "--duration", "3", "--fps", "1,5", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["setting"] for r in rows] == [
        "fps:1",
        "fps:5",
        "msce:8x4/specialist",
        "msce:8x4/vlm",
        "uniform:36",
    ]
    assert rows[0]["tokens"] == {"qwen2-vl": 288, "internvl": 768}
