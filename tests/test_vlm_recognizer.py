"""The `vlm` recognizer end to end: real media files, a real local server, a tiny real model."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from emovlm.errors import BackendError, InputError
from emovlm.labels import get_label_space
from emovlm.recognizers.vlm import VLMRecognizer
from emovlm.types import Sample, Status
from openai_server import Behaviour, FakeOpenAIServer, Fault, label_distribution
from tiny_models import build_tiny_qwen2_vl

os.environ["HF_HUB_OFFLINE"] = "1"
DFEW = get_label_space("dfew")
EMOTIC = get_label_space("emotic")
COLOURS = {
    "red": (250, 0, 0),
    "green": (0, 250, 0),
    "blue": (0, 0, 250),
    "grey": (128, 128, 128),
    "yellow": (250, 250, 0),
    "magenta": (250, 0, 250),
    "cyan": (0, 250, 250),
    "black": (0, 0, 0),
}


def colour_of(image: np.ndarray) -> str:
    """The name of the COLOURS entry nearest to the image's mean colour."""
    mean = image.reshape(-1, 3).mean(0)
    return min(COLOURS, key=lambda name: float(np.abs(mean - COLOURS[name]).sum()))


def write_image(path: Path, colour: str, size: tuple[int, int] = (96, 64)) -> Path:
    """A solid-colour PNG of (width, height)."""
    Image.fromarray(np.full((size[1], size[0], 3), COLOURS[colour], np.uint8)).save(path)
    return path


def write_video(path: Path, colour: str, frames: int = 20) -> Path:
    """A solid-colour MPEG-4 video, 64×64 at 10 fps."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        image = np.full((64, 64, 3), COLOURS[colour], np.uint8)
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(folder: Path, colour: str, frames: int = 8) -> Path:
    """A DFEW-style folder of numbered JPEG frames."""
    folder.mkdir()
    for i in range(frames):
        image = np.full((48, 48, 3), COLOURS[colour], np.uint8)
        Image.fromarray(image).save(folder / f"{folder.name}_{i + 1:05d}.jpg")
    return folder


def answer_by_colour(images: list[np.ndarray], text: str) -> str:
    """The test server's rule: the first image's colour decides; some colours answer oddly."""
    return {
        "red": "angry",
        "green": "Happy.",
        "blue": "The person looks sad.",
        "grey": "neutral",
        "yellow": "I'm not sure.",
        "magenta": "pain",
        "black": "happiness, excitement",
    }.get(colour_of(images[0]) if images else "grey", "neutral")


def questions(server: FakeOpenAIServer) -> list[dict]:
    """Requests the server received, without the backend's one-image preflight probe."""
    return [r for r in server.received if r["text"] != "Reply with one word."]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime=300) as srv:
        yield srv


@pytest.fixture()
def fresh(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.behaviour = Behaviour(
        answer=answer_by_colour, key=lambda images, text: colour_of(images[0])
    )
    server.reset()
    return server


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    files = {name: write_image(root / f"{name}.png", name) for name in COLOURS}
    files["red-frames"] = write_frame_folder(root / "00001", "red")
    files["blue-video"] = write_video(root / "blue.mp4", "blue")
    files["broken"] = root / "broken.png"
    files["broken"].write_bytes(b"not a png")
    return files


def served(
    server: FakeOpenAIServer, label_space=DFEW, tmp: Path | None = None, **kw: object
) -> VLMRecognizer:
    """A recognizer on the test server with its own cache folder."""
    options: dict[str, object] = {
        "backend": "openai",
        "model": "tiny-vlm",
        "base_url": server.url,
        "frames": "uniform:4",
        "max_retries": 1,
        "cache_dir": str(tmp) if tmp else None,
        "cache": tmp is not None,
    }
    options.update(kw)
    return VLMRecognizer(label_space, **options)  # type: ignore[arg-type]


def test_generate_mode_parses_answers_for_images_frame_folders_and_videos(
    fresh: FakeOpenAIServer, media: dict[str, Path]
) -> None:
    samples = [
        Sample("g", media["green"]),
        Sample("r", media["red-frames"]),
        Sample("b", media["blue-video"]),
    ]
    green, red, blue = served(fresh, image_size=48).predict(samples)
    assert (green.top, green.status, green.raw) == ("happy", Status.OK, "Happy.")
    assert (red.top, blue.top) == ("angry", "sad")
    assert red.extra["frames_sampled"] == 4 and green.extra["frames_sampled"] == 1
    for p in (green, red, blue):
        assert p.cost.calls == 1 and p.cost.input_tokens > 0 and p.cost.seconds > 0
    by_colour = {colour_of(r["images"][0]): r for r in questions(fresh)}
    assert len(by_colour["red"]["images"]) == 4 and len(by_colour["green"]["images"]) == 1
    assert by_colour["green"]["images"][0].shape == (32, 48, 3)  # 96×64 shrunk to fit 48
    assert (
        "Choose one of: happy, sad, neutral, angry, surprise, disgust, fear"
        in by_colour["red"]["text"]
    )
    assert "4 frames" in by_colour["red"]["text"]


def test_per_sample_problems_become_statuses_with_reasons(
    fresh: FakeOpenAIServer, media: dict[str, Path]
) -> None:
    fresh.behaviour.faults = {"cyan": [Fault(status=500)] * 4}
    fresh.behaviour.refuse_marker, fresh.behaviour.empty_marker = "grey", "magenta-empty"
    names = ["broken", "yellow", "magenta", "cyan", "grey", "red"]
    preds = served(fresh).predict([Sample(n, media[n]) for n in names])
    got = {p.sample_id: p for p in preds}
    assert got["broken"].status is Status.FAILED and "broken.png" in got["broken"].reason
    assert got["yellow"].status is Status.UNPARSED and "names no emotion" in got["yellow"].reason
    assert got["magenta"].status is Status.OUT_OF_SET and got["magenta"].top == "pain"
    assert (
        got["cyan"].status is Status.FAILED
        and "server error 500 after 2 attempts" in got["cyan"].reason
    )
    assert got["grey"].status is Status.UNPARSED and got["grey"].reason.startswith("refused:")
    assert got["red"].status is Status.OK
    assert [p.sample_id for p in preds] == names


def test_empty_answers_are_unparsed(fresh: FakeOpenAIServer, media: dict[str, Path]) -> None:
    fresh.behaviour.empty_marker = "green"
    [pred] = served(fresh).predict([Sample("g", media["green"])])
    assert pred.status is Status.UNPARSED and pred.reason == "empty answer"


def test_score_mode_gives_probabilities_and_a_ranking(
    fresh: FakeOpenAIServer, media: dict[str, Path]
) -> None:
    fresh.behaviour.answer = lambda images, text: {"red": "angry", "green": "happy"}.get(
        colour_of(images[0]), "neutral"
    )
    red, green = served(fresh, mode="score").predict(
        [Sample("r", media["red"]), Sample("g", media["green"])]
    )
    for pred, answer in ((red, "angry"), (green, "happy")):
        assert pred.status is Status.OK and pred.top == answer
        assert sum(pred.scores.values()) == pytest.approx(1.0)
        assert list(pred.labels) == sorted(DFEW.labels, key=lambda lab: -pred.scores[lab])
        expected = label_distribution(answer, DFEW.labels)
        for label in DFEW.labels:
            assert pred.scores[label] == pytest.approx(expected[label], rel=1e-6)


def test_emotic_person_is_shown_by_a_red_box_or_a_crop(
    fresh: FakeOpenAIServer, media: dict[str, Path]
) -> None:
    sample = Sample("p1", media["black"], labels=("happiness",), box=(20.0, 10.0, 60.0, 50.0))
    [boxed] = served(fresh, EMOTIC).predict([sample])
    assert boxed.status is Status.OK and boxed.labels[:2] == ("happiness", "excitement")
    [request] = questions(fresh)
    image = request["images"][0]
    assert "red box" in request["text"] and "doubt/confusion" in request["text"]
    assert image.shape == (64, 96, 3) and image[10, 40, 0] > 150 and image[30, 40, 0] < 60
    fresh.reset()
    served(fresh, EMOTIC, person="crop").predict([sample])
    [cropped] = questions(fresh)
    assert cropped["images"][0].shape == (48, 48, 3) and "red box" not in cropped["text"]


def test_a_rerun_is_served_from_the_cache_without_a_server(
    media: dict[str, Path], tmp_path: Path
) -> None:
    samples = [Sample(n, media[n]) for n in ("red", "green", "blue-video")]
    with FakeOpenAIServer(Behaviour(answer=answer_by_colour), lifetime=60) as own:
        first = served(own, tmp=tmp_path).predict(samples)
        own.reset()
        again = served(own, tmp=tmp_path).predict(samples)
        assert own.calls == 0
    assert [(p.labels, p.status, p.raw) for p in again] == [
        (p.labels, p.status, p.raw) for p in first
    ]
    assert all(p.extra["cached"] for p in again) and not any(p.extra["cached"] for p in first)
    after_shutdown = served(own, tmp=tmp_path).predict(samples)  # the server is gone now
    assert [p.top for p in after_shutdown] == ["angry", "happy", "sad"]


def test_a_run_that_cannot_work_fails_once_with_the_fix(
    fresh: FakeOpenAIServer, media: dict[str, Path]
) -> None:
    with pytest.raises(BackendError, match="does not serve model 'gpt-x'.*fix --model"):
        served(fresh, model="gpt-x").predict([Sample("r", media["red"])])
    fresh.behaviour.vision = False
    with pytest.raises(BackendError, match="does not accept images"):
        served(fresh).predict([Sample("r", media["red"])])


def test_config_names_the_key_variable_never_the_key(
    fresh: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MY_KEY", "sk-very-secret-123456")
    recognizer = served(fresh, api_key_env="MY_KEY", prompt="contextual-topk")
    config = recognizer.config()
    text = json.dumps(config)
    assert "sk-very-secret" not in text
    assert config["api_key_env"] == "MY_KEY" and config["prompt"] == "contextual-topk"
    assert config["model_fingerprint"]["base_url"] == fresh.url
    own = tmp_path / "p.j2"
    own.write_text("Emotion? {{ labels | join(', ') }}")
    first = served(fresh, prompt=str(own)).config()["prompt_sha256"]
    own.write_text("Which emotion? {{ labels | join(', ') }}")
    assert served(fresh, prompt=str(own)).config()["prompt_sha256"] != first


def test_face_detection_keeps_whole_frames_when_no_face_is_found(
    fresh: FakeOpenAIServer, media: dict[str, Path]
) -> None:
    [pred] = served(fresh, faces="haar").predict([Sample("r", media["red-frames"])])
    assert pred.top == "angry" and pred.extra["frames_with_face"] == 0


def test_bad_settings_are_refused_up_front(fresh: FakeOpenAIServer) -> None:
    with pytest.raises(InputError, match="--model"):
        VLMRecognizer(DFEW, backend="openai", base_url=fresh.url)
    with pytest.raises(InputError, match="--base-url"):
        VLMRecognizer(DFEW, backend="openai", model="tiny-vlm")
    with pytest.raises(InputError, match="--mode"):
        served(fresh, mode="vote")
    with pytest.raises(InputError, match="--adapter applies to --backend transformers"):
        served(fresh, adapter="/tmp/x")
    with pytest.raises(InputError, match="unknown VLM backend 'llamafile'"):
        VLMRecognizer(DFEW, backend="llamafile", model="m")


def test_transformers_backend_end_to_end_on_a_video(media: dict[str, Path], tmp_path: Path) -> None:
    folder = build_tiny_qwen2_vl(tmp_path / "qwen")
    options = {
        "backend": "transformers",
        "model": str(folder),
        "frames": "uniform:4",
        "cache": False,
    }
    scored = VLMRecognizer(DFEW, mode="score", **options)
    [pred] = scored.predict([Sample("b", media["blue-video"])])
    assert pred.status is Status.OK and sum(pred.scores.values()) == pytest.approx(1.0)
    assert pred.cost.visual_tokens > 0 and pred.cost.calls == 1
    assert scored.config()["model_fingerprint"]["files"]
    generated = VLMRecognizer(DFEW, max_new_tokens=4, **options)
    first = generated.predict([Sample("b", media["blue-video"]), Sample("g", media["green"])])
    second = generated.predict([Sample("b", media["blue-video"]), Sample("g", media["green"])])
    assert [(p.raw, p.status) for p in first] == [(p.raw, p.status) for p in second]
    assert all(p.status is not Status.FAILED for p in first)
