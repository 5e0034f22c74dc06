"""Instruction JSONL exports checked against the fields LLaVA and LLaMA-Factory document."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from emovlm.errors import InputError
from emovlm.labels import get_label_space
from emovlm.train.export import DATASET_NAME, export_instructions
from emovlm.train.instructions import ViewBuilder
from emovlm.types import Sample
from emovlm.video import load_image, probe

DFEW = get_label_space("dfew")
EMOTIC = get_label_space("emotic")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_llava(record: dict) -> Path:
    """Validate one LLaVA-style record (id, image | video, human/gpt conversation); return its media."""
    media_keys = [k for k in ("image", "video") if k in record]
    assert isinstance(record["id"], str) and media_keys and len(media_keys) == 1
    human, gpt = record["conversations"]
    assert human["from"] == "human" and gpt["from"] == "gpt"
    assert human["value"].startswith("<image>\n") and human["value"].count("<image>") == 1
    assert isinstance(gpt["value"], str) and gpt["value"]
    path = Path(record[media_keys[0]])
    assert path.is_absolute() and path.is_file()
    return path


def check_sharegpt(record: dict) -> list[Path]:
    """Validate one ShareGPT-style record as LLaMA-Factory reads it; return its media paths."""
    roles = [m["role"] for m in record["messages"]]
    assert roles == ["user", "assistant"]
    assert all(isinstance(m["content"], str) and m["content"] for m in record["messages"])
    text = record["messages"][0]["content"]
    images, videos = record.get("images", []), record.get("videos", [])
    assert text.count("<image>") == len(images) and text.count("<video>") == len(videos)
    assert len(images) + len(videos) == 1
    paths = [Path(p) for p in images + videos]
    assert all(p.is_absolute() and p.is_file() for p in paths)
    return paths


def test_videos_and_photos_export_citing_their_source_files(
    asset: Callable[[str], Path], tmp_path: Path
) -> None:
    samples = [
        Sample("smile", asset("feat-video-single-face"), ("happy",)),
        Sample("photo", asset("feat-surprise"), ("surprise",)),
        Sample("broken", tmp_path / "missing.mp4", ("sad",)),
    ]
    builder = ViewBuilder(DFEW)
    result = export_instructions(samples, builder, tmp_path / "out")
    assert result.n_records == 2 and set(result.failed) == {"broken"}
    llava = _read(result.files["llava"])
    assert [check_llava(r) for r in llava] == [
        asset("feat-video-single-face"),
        asset("feat-surprise"),
    ]
    assert [r["conversations"][1]["value"] for r in llava] == ["happy", "surprise"]
    assert "(8 frames in time order)" in llava[0]["conversations"][0]["value"]
    assert llava[0]["conversations"][0]["value"] == "<image>\n" + builder.view(samples[0]).text
    sharegpt = _read(result.files["sharegpt"])
    assert [check_sharegpt(r) for r in sharegpt] == [
        [asset("feat-video-single-face")],
        [asset("feat-surprise")],
    ]
    assert sharegpt[0]["messages"][0]["content"].startswith("<video>")
    info = json.loads(result.files["dataset_info"].read_text())[DATASET_NAME]
    assert (result.files["dataset_info"].parent / info["file_name"]).is_file()
    assert info["formatting"] == "sharegpt"
    assert info["columns"] == {"messages": "messages", "images": "images", "videos": "videos"}
    assert info["tags"] == {
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
    }


def test_a_person_box_is_drawn_into_a_written_image_and_labels_are_listed(
    asset: Callable[[str], Path], tmp_path: Path
) -> None:
    box = (40.0, 60.0, 300.0, 380.0)
    sample = Sample("person", asset("feat-multi-face"), ("happiness", "engagement"), box=box)
    result = export_instructions([sample], ViewBuilder(EMOTIC), tmp_path / "out", formats=["llava"])
    (record,) = _read(result.files["llava"])
    written = check_llava(record)
    assert written.parent == (tmp_path / "out" / "media").resolve()
    assert record["conversations"][1]["value"] == "happiness, engagement"
    assert "red box" in record["conversations"][0]["value"]
    pixels = load_image(written).astype(int)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    assert red.sum() > 150  # the outline is there (the image is shrunk to 448 px)
    assert set(result.files) == {"llava"}


@pytest.mark.slow
def test_face_crops_of_a_video_are_written_as_a_video(
    asset: Callable[[str], Path], tmp_path: Path
) -> None:
    sample = Sample("smile", asset("feat-video-single-face"), ("happy",))
    builder = ViewBuilder(DFEW, faces="mtcnn", frames="uniform:6")
    result = export_instructions([sample], builder, tmp_path / "out", formats=["sharegpt"])
    (record,) = _read(result.files["sharegpt"])
    (video,) = check_sharegpt(record)
    info = probe(video)
    assert info.kind == "video" and info.frame_count == 6
    assert (
        info.width < 640 and abs(info.width - info.height) < 0.2 * info.width
    )  # a face, not the frame
    assert np.isclose(info.duration, 2.4, atol=0.5)


def test_bad_labels_and_formats_are_refused_before_anything_is_written(
    asset: Callable[[str], Path], tmp_path: Path
) -> None:
    good = Sample("a", asset("feat-happy"), ("happy",))
    with pytest.raises(InputError, match="'joy' is not in label set 'dfew'"):
        export_instructions(
            [good, Sample("b", asset("feat-angry"), ("joy",))], ViewBuilder(DFEW), tmp_path / "x"
        )
    with pytest.raises(InputError, match="unknown export format.*alpaca.*llava, sharegpt"):
        export_instructions([good], ViewBuilder(DFEW), tmp_path / "y", formats=["alpaca"])
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
