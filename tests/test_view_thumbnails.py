"""Thumbnails of what the model saw, from real recognizers through `evaluate` into the store."""

from __future__ import annotations

import base64
import io
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from emovlm.data.base import open_dataset
from emovlm.labels import get_label_space
from emovlm.recognizers.msce import MSCERecognizer
from emovlm.recognizers.specialist import SpecialistRecognizer
from emovlm.recognizers.vlm import VLMRecognizer
from emovlm.run.runner import evaluate
from emovlm.types import Sample
from openai_server import Behaviour, FakeOpenAIServer

DFEW = get_label_space("dfew")
EMOTIC = get_label_space("emotic")


def _video(path: Path, frames: int = 20) -> Path:
    """A 96×64 MPEG-4 video at 10 fps whose frames brighten from black to white."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(frames):
            image = np.full((64, 96, 3), round(255 * i / (frames - 1)), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _stored(run_dir: Path) -> dict[str, list[tuple[str, tuple[int, int]]]]:
    """Sample id → its stored (caption, picture size) pairs, in order."""
    conn = sqlite3.connect(run_dir / "store.sqlite")
    found: dict[str, list[tuple[str, tuple[int, int]]]] = {}
    for sample_id, caption, jpeg in conn.execute(
        "SELECT sample_id, caption, jpeg FROM thumbnails ORDER BY sample_id, idx"
    ):
        found.setdefault(sample_id, []).append((caption, Image.open(io.BytesIO(jpeg)).size))
    conn.close()
    return found


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("media")
    (root / "happy").mkdir()
    (root / "sad").mkdir()
    _video(root / "happy" / "fade.mp4")
    Image.fromarray(np.full((300, 400, 3), 90, np.uint8)).save(root / "sad" / "grey.png")
    return root


def _run(recognizer, root: Path, run_dir: Path, thumbnails: int) -> None:
    data = open_dataset("folder", root, split="test", fold=1, label_set="dfew")
    evaluate(
        data,
        recognizer,
        run_dir,
        dataset_config=data.config(),
        progress=False,
        report=False,
        thumbnails=thumbnails,
    )


def test_vlm_keeps_the_frames_it_sent(folder, tmp_path):
    with FakeOpenAIServer(Behaviour(answer=lambda images, text: "happy"), lifetime=120) as server:
        options = {"backend": "openai", "model": "tiny-vlm", "base_url": server.url}
        recognizer = VLMRecognizer(DFEW, frames="uniform:8", **options)
        _run(recognizer, folder, tmp_path / "four", thumbnails=4)
        _run(recognizer, folder, tmp_path / "none", thumbnails=0)
    stored = _stored(tmp_path / "four")
    video = stored["happy/fade.mp4"]
    assert len(video) == 4 and all(size == (96, 64) for _, size in video)
    assert video[0][0].startswith("frame ") and " s" in video[0][0]
    assert stored["sad/grey.png"] == [("frame 0 · 0.00 s", (128, 96))]
    assert _stored(tmp_path / "none") == {}


def test_vlm_thumbnail_shows_the_red_box(tmp_path):
    image = tmp_path / "people.png"
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(image)
    sample = Sample("person-1", image, labels=("peace",), box=(32.0, 24.0, 128.0, 96.0))
    with FakeOpenAIServer(
        Behaviour(answer=lambda images, text: "peace", labels=EMOTIC.labels), lifetime=60
    ) as server:
        recognizer = VLMRecognizer(
            EMOTIC, backend="openai", model="tiny-vlm", base_url=server.url, person="box"
        )
        [prediction] = recognizer.predict([sample])
    [entry] = prediction.extra["thumbnails"]
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(entry["jpeg"])))).astype(int)
    assert picture.shape == (96, 128, 3)
    top_edge = picture[16:24, 64]  # the box's top edge is at y = 24 × 0.8 in the thumbnail
    assert (top_edge[:, 0] - top_edge[:, 1]).max() > 60  # red there
    for y, x in ((5, 5), (50, 64)):  # outside and inside the box: the grey picture
        assert np.abs(picture[y, x] - 200).max() < 12


def test_specialist_keeps_face_crops(asset, tmp_path):
    root = tmp_path / "faces"
    (root / "happy").mkdir(parents=True)
    shutil.copy(asset("astronaut"), root / "happy" / "astronaut.png")
    shutil.copy(asset("feat-video-single-face"), root / "happy" / "smile.mp4")
    _run(SpecialistRecognizer(DFEW), root, tmp_path / "run", thumbnails=2)
    stored = _stored(tmp_path / "run")
    assert [caption for caption, _ in stored["happy/astronaut.png"]] == ["face at 0.00 s"]
    video = stored["happy/smile.mp4"]
    assert len(video) == 2 and video[0][0] == "face at 0.00 s"
    assert all(max(size) <= 128 for _, size in video)


def test_msce_keeps_its_keyframes(asset):
    with FakeOpenAIServer(Behaviour(answer=lambda images, text: "happy"), lifetime=120) as server:
        recognizer = MSCERecognizer(
            DFEW,
            backend="openai",
            model="tiny-vlm",
            base_url=server.url,
            cache=False,
            max_retries=0,
            keyframes=3,
            per_gap=2,
            faces="haar",
        )
        [prediction] = recognizer.predict([Sample("smile", asset("feat-video-single-face"))])
    assert prediction.status.value == "ok", prediction.reason
    captions = [entry["caption"] for entry in prediction.extra["thumbnails"]]
    keyframes = prediction.extra["plan"]["keyframes"]
    assert [int(c.split()[1]) for c in captions] == keyframes
    assert all(c.startswith("keyframe ") for c in captions)


@pytest.mark.slow
def test_cli_eval_keeps_thumbnails_and_view_shares_them(asset, tmp_path):
    root = tmp_path / "faces"
    (root / "happy").mkdir(parents=True)
    shutil.copy(asset("feat-video-single-face"), root / "happy" / "smile.mp4")
    run_dir, page = tmp_path / "run", tmp_path / "share.html"

    def emovlm(*args: str | Path) -> None:
        command = [sys.executable, "-m", "emovlm", *map(str, args)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, result.stderr

    emovlm("eval", "--dataset", "folder", "--root", root, "--label-set", "dfew", "--run-dir",
           run_dir, "--no-progress", "--bootstrap", "0", "--thumbnails", "1")  # fmt: skip
    assert [caption for caption, _ in _stored(run_dir)["happy/smile.mp4"]] == ["face at 0.00 s"]
    emovlm("view", run_dir, "--static", page)
    assert page.read_text(encoding="utf-8").count("data:image/jpeg;base64,") == 1
