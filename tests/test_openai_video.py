"""Clips sent to servers as one MP4 (`--frames-as video|auto`) and the server refusals that
must surface as one clear error before the run or as a per-sample reason."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from emovlm.backends.openai_vlm import OpenAIVLM
from emovlm.backends.video_payload import encode_mp4, frame_rate
from emovlm.backends.vlm import GenerationSettings, VideoInput, VLMRequest
from emovlm.errors import BackendError, InputError
from emovlm.frames import keyframes_with_gaps, parse_sampler
from emovlm.labels import get_label_space
from emovlm.recognizers.msce import MSCERecognizer
from emovlm.recognizers.vlm import VLMRecognizer
from emovlm.types import Sample, Status
from emovlm.video import probe
from openai_server import Behaviour, FakeOpenAIServer

DFEW = get_label_space("dfew")
GREEDY = GenerationSettings(max_new_tokens=4)
FRAMES, SOURCE_FPS, STEP = 40, 10, 6
PROBE_TEXT = "Reply with one word."


def index_of(image: np.ndarray) -> int:
    """The frame index a frame of the indexed video shows (its grey level / STEP)."""
    return int(round(float(image.mean()) / STEP))


def write_indexed_video(path: Path) -> Path:
    """A 64×48 H.264 video at 10 fps whose frame i is grey level i·STEP."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=SOURCE_FPS, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(FRAMES):
            image = np.full((48, 64, 3), i * STEP, np.uint8)
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
    server.behaviour = Behaviour()
    server.reset()
    return server


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_indexed_video(tmp_path_factory.mktemp("video") / "indexed.mp4")


def questions(server: FakeOpenAIServer) -> list[dict]:
    return [r for r in server.received if r["text"] != PROBE_TEXT]


def recognizer(server: FakeOpenAIServer, **kw: object) -> VLMRecognizer:
    options: dict[str, object] = {
        "backend": "openai",
        "model": "tiny-vlm",
        "base_url": server.url,
        "frames": "uniform:8",
        "frames_as": "video",
        "max_retries": 1,
        "cache": False,
    }
    options.update(kw)
    return VLMRecognizer(DFEW, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("frames", ["uniform:8", "fps:2.5", "uniform:6+shuffle:3"])
def test_the_server_decodes_the_sampled_frames_in_order_at_the_sampled_rate(
    fresh: FakeOpenAIServer, clip: Path, frames: str
) -> None:
    [prediction] = recognizer(fresh, frames=frames).predict([Sample("s1", clip, "neutral")])
    assert prediction.status == Status.OK, prediction.error
    [question] = questions(fresh)
    assert question["images"] == []
    [video] = question["videos"]
    info = probe(clip)
    indices = parse_sampler(frames).indices(info.frame_count, info.fps)
    assert [index_of(f) for f in video["frames"]] == list(indices)
    assert video["fps"] == frame_rate(len(indices) / info.duration)
    assert video["codec"] == "h264"
    part = question["body"]["messages"][-1]["content"][0]
    assert part["type"] == "video_url" and part["video_url"]["url"].startswith("data:video/mp4")


def test_frames_as_images_sends_the_same_frames_as_images(
    fresh: FakeOpenAIServer, clip: Path
) -> None:
    vlm = recognizer(fresh, frames_as="images")
    assert "frames_as" not in vlm.config()["model_fingerprint"]
    vlm.predict([Sample("s1", clip, "neutral")])
    [question] = questions(fresh)
    assert question["videos"] == []
    assert [index_of(f) for f in question["images"]] == parse_sampler("uniform:8").indices(40, 10)


def test_odd_sizes_are_padded_and_frame_rates_kept_as_fractions() -> None:
    frames = [np.full((35, 47, 3), v, np.uint8) for v in (0, 120, 240)]
    with av.open(io.BytesIO(encode_mp4(frames, 30000 / 1001))) as container:
        stream = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert Fraction(stream.average_rate) == Fraction(30000, 1001)
    assert [d.shape for d in decoded] == [(36, 48, 3)] * 3
    means = [float(d[:35, :47].mean()) for d in decoded]
    assert means == pytest.approx([0, 120, 240], abs=3)  # 4:2:0 colour conversion, nothing more


def test_a_server_refusing_video_stops_the_run_before_it_starts(
    fresh: FakeOpenAIServer, clip: Path
) -> None:
    fresh.behaviour = Behaviour(video=False)
    vlm = recognizer(fresh)
    with pytest.raises(BackendError, match=r"does not take video input.*--frames-as images"):
        vlm.predict([Sample("s1", clip, "neutral")])
    assert questions(fresh) == []


def test_auto_falls_back_to_images_with_a_note(
    fresh: FakeOpenAIServer, clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fresh.behaviour = Behaviour(video=False)
    vlm = recognizer(fresh, frames_as="auto")
    with caplog.at_level(logging.WARNING):
        [prediction] = vlm.predict([Sample("s1", clip, "neutral")])
    assert prediction.status == Status.OK
    assert "does not take video input" in caplog.text and "as images" in caplog.text
    [question] = questions(fresh)
    assert len(question["images"]) == 8 and question["videos"] == []
    assert "frames_as" not in vlm.config()["model_fingerprint"]
    assert vlm.run_stats()["frames_as"] == "images"


def test_auto_sends_video_to_a_server_that_takes_it(fresh: FakeOpenAIServer, clip: Path) -> None:
    vlm = recognizer(fresh, frames_as="auto")
    assert vlm.config()["model_fingerprint"]["frames_as"] == "video"  # asked once, up front
    vlm.predict([Sample("s1", clip, "neutral")])
    [question] = questions(fresh)
    assert len(question["videos"]) == 1
    assert vlm.run_stats()["visual_tokens_reported"] == 85 * 4  # the server's usage, per pair


def test_images_over_the_server_limit_fail_before_the_run(
    fresh: FakeOpenAIServer, clip: Path
) -> None:
    fresh.behaviour = Behaviour(max_image_side=256)
    with pytest.raises(BackendError, match=r"refuses a 448×448 test image.*--image-size"):
        recognizer(fresh, frames_as="images").predict([Sample("s1", clip, "neutral")])
    assert questions(fresh) == []


def test_per_request_refusals_name_the_cause_and_the_fix(fresh: FakeOpenAIServer) -> None:
    fresh.behaviour = Behaviour(max_image_side=64, context_limit=300)
    vlm = OpenAIVLM("tiny-vlm", base_url=fresh.url, max_retries=0)
    big = np.zeros((100, 100, 3), np.uint8)
    small = np.zeros((32, 32, 3), np.uint8)
    too_large, too_long, fine = vlm.generate(
        [
            VLMRequest((big, "q")),
            VLMRequest((VideoInput((small,) * 4, fps=2.0), "q")),
            VLMRequest((small, "q")),
        ],
        GREEDY,
    )
    assert too_large.error.startswith("image too large") and "--image-size" in too_large.error
    assert too_long.error.startswith("context too long") and "--frames" in too_long.error
    assert not fine.error


def test_video_flags_apply_to_the_openai_backend_only(fresh: FakeOpenAIServer) -> None:
    with pytest.raises(InputError, match="--frames-as"):
        VLMRecognizer(DFEW, backend="transformers", model="x", frames_as="video")
    with pytest.raises(InputError, match="--frames-as 'mp4' is unknown"):
        recognizer(fresh, frames_as="mp4")


def test_msce_describer_gaps_go_as_videos_and_keyframes_as_images(
    fresh: FakeOpenAIServer, clip: Path
) -> None:
    msce = MSCERecognizer(
        DFEW,
        backend="openai",
        model="tiny-vlm",
        base_url=fresh.url,
        describer="vlm",
        keyframes=4,
        per_gap=2,
        frames_as="video",
        cache=False,
    )
    [prediction] = msce.predict([Sample("s1", clip, "neutral")])
    assert prediction.status != Status.FAILED, prediction.error
    plan = keyframes_with_gaps(FRAMES, 4, 2)
    described = [q for q in questions(fresh) if q["videos"]]
    seen = sorted([index_of(f) for f in q["videos"][0]["frames"]] for q in described)
    assert seen == sorted(plan.gaps)
    [stage2] = [q for q in questions(fresh) if not q["videos"]]
    assert [index_of(image) for image in stage2["images"]] == plan.keyframes
