"""`emovlm eval` against a served model: --dry-run counts, and a run at 4× the server's capacity."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from emovlm import cli
from emovlm.backends.visual_tokens import FAMILIES
from openai_server import Behaviour, FakeOpenAIServer

QWEN = "Qwen/Qwen2.5-VL-7B-Instruct"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime=300) as srv:
        yield srv


def write_video(path: Path, frames: int = 40) -> Path:
    """A 64×48 video at 10 fps (4 s)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.full((48, 64, 3), (i * 5, 250 - i * 5, 0), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 4-s videos, one 96×64 image and one unreadable file, listed in clips.csv."""
    root = tmp_path_factory.mktemp("clips")
    for name in ("a", "b", "c"):
        write_video(root / f"{name}.mp4")
    Image.fromarray(np.full((64, 96, 3), (0, 250, 0), np.uint8)).save(root / "d.png")
    (root / "e.png").write_bytes(b"not a png")
    rows = "".join(f"{name},{name}.mp4,happy\n" for name in "abc")
    (root / "clips.csv").write_text(f"id,path,label\n{rows}d,d.png,sad\ne,e.png,sad\n")
    return root


def eval_args(server: FakeOpenAIServer, root: Path, csv: str, *extra: str) -> list[str]:
    return [
        "eval",
        "--dataset",
        "manifest",
        "--root",
        str(root),
        "--dataset-option",
        f"manifest={csv}",
        "--label-set",
        "dfew",
        "--backend",
        "openai",
        "--base-url",
        server.url,
        "--no-progress",
        *extra,
    ]


def number(output: str, label: str) -> str:
    match = re.search(rf"{label}\s+[~≤]?([\d,.]+)", output)
    assert match, output
    return match.group(1).replace(",", "")


def test_dry_run_counts_requests_videos_and_tokens_without_calling_the_model(
    server: FakeOpenAIServer, clips: Path, tmp_path: Path
) -> None:
    server.behaviour = Behaviour(models=(QWEN,))
    server.reset()
    run_dir = tmp_path / "run"
    args = eval_args(server, clips, "clips.csv", "--recognizer", "vlm", "--model", QWEN)
    args += [
        "--frames",
        "uniform:8",
        "--frames-as",
        "video",
        "--dry-run",
        "--run-dir",
        str(run_dir),
    ]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert server.calls == 0 and not run_dir.exists()
    out = result.output
    assert "5 samples → 4 requests" in out and "unreadable e:" in out
    assert "3 (24 frames, 12.0 s of video)" in out
    assert number(out, "images") == "1"
    qwen = FAMILIES["qwen2.5-vl"]
    expected = 3 * qwen.video(8, 48, 64) + qwen.image(64, 96)
    assert int(number(out, "visual tokens")) == expected
    assert int(number(out, "text tokens")) > 4 * 10 and int(number(out, "output tokens")) == 4 * 16


def test_dry_run_counts_msce_describer_calls_and_images_as_images(
    server: FakeOpenAIServer, clips: Path
) -> None:
    server.reset()
    args = eval_args(server, clips, "clips.csv", "--recognizer", "msce", "--model", "some-vlm")
    args += [
        "--describer",
        "vlm",
        "--keyframes",
        "4",
        "--per-gap",
        "2",
        "--dry-run",
        "--limit",
        "3",
    ]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert server.calls == 0
    # per clip: 3 gap descriptions (2 frames each, as images) + 1 stage-2 call (4 keyframes)
    assert "3 samples → 12 requests" in result.output
    assert number(result.output, "images") == str(3 * (3 * 2 + 4))
    assert "unknown family" in result.output


def test_dry_run_refuses_recognizers_that_send_nothing_to_a_vlm(
    server: FakeOpenAIServer, clips: Path
) -> None:
    args = eval_args(server, clips, "clips.csv", "--recognizer", "majority", "--dry-run")
    args = [a for a in args if a not in {"--backend", "openai", "--base-url", server.url}]
    result = CliRunner().invoke(cli.app, args)
    assert "--dry-run counts the requests of vlm" in str(result.exception)


def test_a_run_at_four_times_the_servers_capacity_completes_without_failures(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    n = 4
    server.behaviour = Behaviour(max_concurrent=n, latency=0.01, busy_retry_after=0.02)
    server.reset()
    root = tmp_path / "images"
    root.mkdir()
    Image.fromarray(np.full((32, 32, 3), (0, 250, 0), np.uint8)).save(root / "g.png")
    rows = "".join(f"s{i},g.png,happy\n" for i in range(120))
    (root / "many.csv").write_text(f"id,path,label\n{rows}")
    run_dir = tmp_path / "run"
    args = eval_args(server, root, "many.csv", "--recognizer", "vlm", "--model", "tiny-vlm")
    args += ["--concurrency", str(4 * n), "--no-cache", "--run-dir", str(run_dir)]
    args += ["--bootstrap", "10"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output
    assert server.outcomes.count(429) > 0 and server.max_in_flight <= n
    [entry] = yaml.safe_load((run_dir / "config.yaml").read_text())["configurations"]
    execution = entry["execution"]
    assert execution["rejections"] == server.outcomes.count(429)
    assert execution["concurrency_ceiling"] == 4 * n and execution["concurrency_min"] <= n


def test_identical_requests_in_flight_together_are_sent_once(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.behaviour = Behaviour(latency=0.05)
    server.reset()
    root = tmp_path / "images"
    root.mkdir()
    for name, colour in {"g.png": (0, 250, 0), "r.png": (250, 0, 0)}.items():
        Image.fromarray(np.full((32, 32, 3), colour, np.uint8)).save(root / name)
    rows = "".join(f"s{i},{'gr'[i % 2]}.png,happy\n" for i in range(40))
    (root / "twins.csv").write_text(f"id,path,label\n{rows}")
    run_dir = tmp_path / "run"
    args = eval_args(server, root, "twins.csv", "--recognizer", "vlm", "--model", "tiny-vlm")
    args += ["--concurrency", "16", "--cache-dir", str(tmp_path / "cache")]
    args += ["--run-dir", str(run_dir), "--bootstrap", "10"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output and "40 samples" in result.output
    asked = [r for r in server.received if "Which emotion" in r["text"]]  # not the probe
    assert len(asked) == 2  # one per distinct image, however many were in flight at once
