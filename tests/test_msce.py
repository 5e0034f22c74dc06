"""MSCE end to end: request shapes on a real local server, a tiny Qwen2-VL, and real face videos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from emovlm.errors import InputError
from emovlm.frames import keyframes_with_gaps
from emovlm.labels import get_label_space
from emovlm.recognizers.msce import MSCERecognizer
from emovlm.types import Cost, Sample, Status
from openai_server import Behaviour, FakeOpenAIServer, Fault
from tiny_models import build_tiny_qwen2_vl

os.environ["HF_HUB_OFFLINE"] = "1"
DFEW = get_label_space("dfew")
LEVEL_STEP = 6
FRAMES = 40
DESCRIBE_CUE = "In one short sentence"


def frame_index(image: np.ndarray) -> int:
    """The index a frame of the index video encodes in its grey level."""
    return int(round(float(image.mean()) / LEVEL_STEP))


def answer(images: list[np.ndarray], text: str) -> str:
    """Describer calls answer with the frame indices they saw; stage 2 answers happy."""
    if DESCRIBE_CUE in text:
        return "saw " + " ".join(str(frame_index(image)) for image in images)
    return "happy"


@pytest.fixture(scope="module")
def index_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-frame, 10 fps video whose frame i is the solid grey level 6·i."""
    path = tmp_path_factory.mktemp("media") / "index.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.options = {"qscale": "1"}
        for i in range(FRAMES):
            image = np.full((64, 64, 3), LEVEL_STEP * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime=300) as srv:
        yield srv


@pytest.fixture()
def fresh(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.behaviour = Behaviour(answer=answer)
    server.reset()
    return server


def msce(server: FakeOpenAIServer, **options: object) -> MSCERecognizer:
    """An MSCE recognizer whose stage 2 (and VLM describer) is the test server."""
    settings: dict[str, object] = {
        "backend": "openai",
        "model": "tiny-vlm",
        "base_url": server.url,
        "cache": False,
        "max_retries": 0,
        "keyframes": 4,
        "per_gap": 3,
    }
    settings.update(options)
    return MSCERecognizer(DFEW, **settings)  # type: ignore[arg-type]


def questions(server: FakeOpenAIServer) -> tuple[list[dict], list[dict]]:
    """(describer requests, stage-2 requests) the server received, without preflight probes."""
    asked = [r for r in server.received if r["text"] != "Reply with one word."]
    return [r for r in asked if DESCRIBE_CUE in r["text"]], [
        r for r in asked if DESCRIBE_CUE not in r["text"]
    ]


def content(request: dict) -> list[str | int]:
    """A stage-2 request's user content in order: texts as text, images as their frame index."""
    images = iter(request["images"])
    return [
        part["text"] if part["type"] == "text" else frame_index(next(images))
        for part in request["body"]["messages"][-1]["content"]
    ]


def test_describer_calls_get_exactly_the_in_between_frames_and_stage_2_interleaves_in_time_order(
    fresh: FakeOpenAIServer, index_video: Path
) -> None:
    (pred,) = msce(fresh, describer="vlm").predict([Sample("clip", index_video)])
    plan = keyframes_with_gaps(FRAMES, 4, 3)
    described, classified = questions(fresh)

    seen = sorted([frame_index(image) for image in r["images"]] for r in described)
    assert seen == sorted(plan.gaps)  # each gap once: its frames, in time order, nothing else
    (stage2,) = classified
    parts = content(stage2)
    images = [p for p in parts if isinstance(p, int)]
    assert images == plan.keyframes  # k keyframe images in time order
    between = [
        parts[parts.index(a) + 1 : parts.index(b)] for a, b in zip(images, images[1:], strict=False)
    ]
    for gap, texts in zip(plan.gaps, between, strict=True):  # k - 1 sentences, one per gap
        (text,) = texts
        assert f"saw {' '.join(map(str, gap))}" in text
    assert isinstance(parts[0], str) and "Choose one of" in parts[-1]

    assert (pred.status, pred.top) == (Status.OK, "happy")
    assert pred.extra["plan"] == {"keyframes": plan.keyframes, "gaps": plan.gaps}
    assert pred.extra["sentences"] == [f"saw {' '.join(map(str, gap))}" for gap in plan.gaps]
    describe, classify = (Cost(**pred.extra["stage_costs"][s]) for s in ("describe", "classify"))
    assert (describe.calls, classify.calls, pred.cost.calls) == (3, 1, 4)
    assert pred.cost.input_tokens == describe.input_tokens + classify.input_tokens > 0


def test_the_text_variant_sends_the_sentences_alone_in_time_order(
    fresh: FakeOpenAIServer, index_video: Path
) -> None:
    (pred,) = msce(fresh, describer="vlm", stage2="text").predict([Sample("clip", index_video)])
    _, (stage2,) = questions(fresh)
    assert stage2["images"] == []
    gaps = keyframes_with_gaps(FRAMES, 4, 3).gaps
    places = [stage2["text"].index(f"saw {' '.join(map(str, gap))}") for gap in gaps]
    assert places == sorted(places)
    assert pred.top == "happy" and pred.extra["stage2"] == "text"


def test_edges_also_describe_the_frames_before_the_first_and_after_the_last_keyframe(
    fresh: FakeOpenAIServer, index_video: Path
) -> None:
    msce(fresh, describer="vlm", edges=True, per_gap=2).predict([Sample("clip", index_video)])
    plan = keyframes_with_gaps(FRAMES, 4, 2)  # keyframes 5, 15, 25, 35
    described, (stage2,) = questions(fresh)
    seen = sorted([frame_index(image) for image in r["images"]] for r in described)
    assert seen == sorted([[1, 3], *plan.gaps, [37, 39]])
    parts = content(stage2)
    first, last = parts.index(plan.keyframes[0]), parts.index(plan.keyframes[-1])
    assert "saw 1 3" in " ".join(p for p in parts[:first] if isinstance(p, str))
    assert "saw 37 39" in parts[last + 1]


def test_the_describer_can_be_another_server(fresh: FakeOpenAIServer, index_video: Path) -> None:
    with FakeOpenAIServer(Behaviour(answer=answer, models=("describer",)), lifetime=60) as other:
        recognizer = msce(
            fresh, describer="vlm", describer_model="describer", describer_base_url=other.url
        )
        (pred,) = recognizer.predict([Sample("clip", index_video)])
        assert len(questions(other)[0]) == 3 and questions(other)[1] == []
    described, classified = questions(fresh)
    assert described == [] and len(classified) == 1
    assert pred.cost.calls == 4
    assert recognizer.config()["describer"]["model"] == "describer"


def test_a_failed_describer_call_fails_the_sample_with_the_stage_and_cost(
    fresh: FakeOpenAIServer, index_video: Path
) -> None:
    fresh.behaviour.faults = {DESCRIBE_CUE: [Fault(status=400, message="bad frames")]}
    (pred,) = msce(fresh, describer="vlm").predict([Sample("clip", index_video)])
    assert pred.status is Status.FAILED
    assert (
        pred.reason.startswith("stage 1 (vlm describer): describing")
        and "bad frames" in pred.reason
    )
    assert pred.cost.calls == 3
    assert questions(fresh)[1] == []  # stage 2 was not asked


def test_the_specialist_describer_runs_end_to_end_on_a_real_smile(
    fresh: FakeOpenAIServer, asset: Callable[[str], Path]
) -> None:
    recognizer = msce(fresh, stage2="text", faces="haar", keyframes=8, per_gap=4, edges=True)
    (pred,) = recognizer.predict([Sample("smile", asset("feat-video-single-face"))])
    _, (stage2,) = questions(fresh)
    text = stage2["text"]
    assert stage2["images"] == [] and text.index("happiness rises") < text.index("happiness falls")
    assert pred.status is Status.OK and pred.top == "happy"
    assert len(pred.extra["windows"]) == 9  # lead-in, 7 gaps, tail
    assert pred.extra["frames_described"] == 72
    describe = Cost(**pred.extra["stage_costs"]["describe"])
    assert describe.calls == 0 and describe.seconds > 0 and pred.cost.calls == 1


def test_interleaved_with_the_specialist_describer_shows_the_keyframes(
    fresh: FakeOpenAIServer, asset: Callable[[str], Path]
) -> None:
    (pred,) = msce(fresh, faces="haar").predict([Sample("smile", asset("feat-video-single-face"))])
    _, (stage2,) = questions(fresh)
    parts = content(stage2)
    assert sum(isinstance(p, int) for p in parts) == 4
    assert sum(p.startswith("Between ") for p in parts if isinstance(p, str)) == 3
    assert pred.extra["describer"] == "specialist" and pred.cost.calls == 1


def test_the_text_variant_can_go_to_a_text_llm_without_any_vlm(
    fresh: FakeOpenAIServer, asset: Callable[[str], Path]
) -> None:
    recognizer = MSCERecognizer(
        DFEW,
        stage2="text",
        faces="haar",
        llm_backend="openai",
        llm_model="tiny-vlm",
        llm_base_url=fresh.url,
        cache=False,
        max_retries=0,
    )
    (pred,) = recognizer.predict([Sample("smile", asset("feat-video-single-face"))])
    (stage2,) = [r for r in fresh.received if "Choose one of" in r["text"]]
    assert isinstance(stage2["body"]["messages"][-1]["content"], str)  # a text LLM's chat form
    assert "happiness rises" in stage2["text"] and stage2["images"] == []
    assert pred.status is Status.OK and pred.cost.calls == 1
    config = recognizer.config()
    assert config["classifier"] is None and config["text_llm"]["model"] == "tiny-vlm"


def test_the_command_line_takes_the_msce_flags(
    fresh: FakeOpenAIServer, asset: Callable[[str], Path]
) -> None:
    command = [sys.executable, "-m", "emovlm", "predict", str(asset("feat-video-single-face"))]
    command += ["--label-set", "dfew", "--recognizer", "msce", "--stage2", "text", "--edges"]
    command += ["--keyframes", "4", "--per-gap", "2", "--faces", "haar", "--no-cache", "--json"]
    command += ["--llm-backend", "openai", "--llm-base-url", fresh.url, "--llm-model", "tiny-vlm"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    assert record["status"] == "ok" and record["label"] == "happy"  # the server answers happy
    (stage2,) = [r for r in fresh.received if "Choose one of" in r["text"]]
    assert stage2["text"].count("Between ") == 5  # lead-in, 3 gaps, tail


def test_the_text_variant_fails_clearly_on_a_still_image(
    fresh: FakeOpenAIServer, asset: Callable[[str], Path]
) -> None:
    (pred,) = msce(fresh, stage2="text", faces="haar").predict(
        [Sample("photo", asset("feat-happy"))]
    )
    assert pred.status is Status.FAILED and pred.reason.startswith("nothing to describe")
    assert questions(fresh) == ([], [])


def test_bad_settings_are_refused_up_front(server: FakeOpenAIServer, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--describer 'llm'"):
        msce(server, describer="llm")
    with pytest.raises(InputError, match="--stage2"):
        msce(server, stage2="images")
    with pytest.raises(InputError, match="--describer-base-url apply to --describer vlm only"):
        msce(server, describer_base_url=server.url)
    with pytest.raises(InputError, match="--llm-model apply to --stage2 text only"):
        msce(server, llm_model="gemma3-270m")
    with pytest.raises(InputError, match="needs --model"):
        MSCERecognizer(DFEW, describer="vlm", stage2="text")
    with pytest.raises(InputError, match="multi-label"):
        MSCERecognizer(get_label_space("emotic"), backend="openai", model="m", base_url=server.url)
    no_images = tmp_path / "no-images.j2"
    no_images.write_text("{% for step in steps %}{{ step.kind }} {% endfor %}Which emotion?")
    with pytest.raises(InputError, match="must show each of the 2 keyframes once"):
        msce(server, prompt=str(no_images))


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("qwen2_vl"))


@pytest.mark.parametrize("stage2", ["interleaved", "text"])
def test_a_tiny_qwen2_vl_runs_both_stages_locally(
    tiny_qwen: Path, index_video: Path, stage2: str
) -> None:
    recognizer = MSCERecognizer(
        DFEW,
        model=str(tiny_qwen),
        keyframes=3,
        per_gap=2,
        describer="vlm",
        stage2=stage2,
        mode="score",
        image_size=56,
        describer_max_new_tokens=4,
        cache=False,
    )
    (pred,) = recognizer.predict([Sample("clip", index_video)])
    assert pred.status is Status.OK and set(pred.labels) == set(DFEW.labels)
    describe, classify = (Cost(**pred.extra["stage_costs"][s]) for s in ("describe", "classify"))
    assert (describe.calls, classify.calls) == (2, 1)
    assert describe.visual_tokens > 0  # the gap frames went in as videos
    assert (classify.visual_tokens > 0) == (stage2 == "interleaved")
    assert pred.cost.visual_tokens == describe.visual_tokens + classify.visual_tokens
