"""A corpus of broken inputs: each gives a per-sample status or one clear up-front error.

Bad media (truncated, empty, undecodable, not an image, unreadable, missing, a box outside the
image) must each become a row with a reason, in a run that completes; bad annotations (a path
outside the root, missing columns, unknown labels, a reversed box, repeated ids, bad encodings)
must stop `emovlm eval` before it starts, with one line naming the file and line.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from emovlm import cli
from emovlm.run.store import RunStore
from emovlm.types import Status
from openai_server import FakeOpenAIServer

UNICODE_NAME = "ünï cødé dir/smiling face 😀 #1.png"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    """The served model (green faces are happy)."""
    with FakeOpenAIServer(lifetime=300) as srv:
        yield srv


def write_video(path: Path, frames: int = 30, *, index_first: bool = False) -> None:
    """A 64x64 MPEG-4 video of noisy green frames (its index at the front if asked)."""
    options = {"movflags": "faststart"} if index_first else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(frames):
            image = rng.integers(0, 60, (64, 64, 3), dtype=np.uint8)
            image[..., 1] += 180
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def green_image(path: Path) -> None:
    """A 24x24 green PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), (20, 200, 20)).save(path)


def scrambled_frames(good: Path, path: Path) -> None:
    """A copy of a video whose container is intact but whose frame data is random bytes."""
    data = bytearray(good.read_bytes())
    start = data.index(b"mdat") + 4
    size = int.from_bytes(data[start - 8 : start - 4], "big") - 8
    data[start : start + size] = np.random.default_rng(1).integers(0, 256, size, np.uint8).tobytes()
    path.write_bytes(bytes(data))


def build_corpus(root: Path) -> list[dict[str, str]]:
    """Write the media and return the manifest rows (id, path, label, box)."""
    root.mkdir(parents=True)
    green_image(root / "good.png")
    green_image(root / UNICODE_NAME)
    write_video(root / "good.mp4")
    write_video(root / "indexed_first.mp4", index_first=True)
    whole = (root / "indexed_first.mp4").read_bytes()
    (root / "truncated_index_first.mp4").write_bytes(whole[: len(whole) // 2])
    write_video(root / "index_last.mp4")
    whole = (root / "index_last.mp4").read_bytes()
    (root / "truncated_index_lost.mp4").write_bytes(whole[: len(whole) * 4 // 10])
    scrambled_frames(root / "index_last.mp4", root / "no_decodable_frame.mp4")
    (root / "empty.mp4").touch()
    (root / "not_an_image.jpg").write_text("this is a text file, not a JPEG\n")
    (root / "folder.mp4").mkdir()
    green_image(root / "unreadable.png")
    (root / "unreadable.png").chmod(0)
    rows = {
        "good image": "good.png",
        "good video": "good.mp4",
        "non-ascii, spaces": UNICODE_NAME,
        "truncated, index kept": "truncated_index_first.mp4",
        "truncated, index lost": "truncated_index_lost.mp4",
        "no decodable frame": "no_decodable_frame.mp4",
        "zero bytes": "empty.mp4",
        "not an image": "not_an_image.jpg",
        "a folder, no frames": "folder.mp4",
        "unreadable": "unreadable.png",
        "missing": "gone.mp4",
        "box outside": "good.png",
        "box overlapping the edge": "good.png",
    }
    boxes = {"box outside": "100,100,140,140", "box overlapping the edge": "12,12,60,60"}
    return [
        {"id": sample_id, "path": path, "label": "happy", "box": boxes.get(sample_id, "")}
        for sample_id, path in rows.items()
    ]


EXPECTED = {
    "good image": (Status.OK, ""),
    "good video": (Status.OK, ""),
    "non-ascii, spaces": (Status.OK, ""),
    "truncated, index lost": (Status.FAILED, "it is not a readable video"),
    "no decodable frame": (Status.FAILED, "its first frame does not decode"),
    "zero bytes": (Status.FAILED, "the file is empty (0 bytes)"),
    "not an image": (Status.FAILED, "cannot read this image"),
    "a folder, no frames": (Status.FAILED, "folder holds no frame images"),
    "unreadable": (Status.FAILED, "Permission denied"),
    "missing": (Status.FAILED, "no such file or folder"),
    "box outside": (Status.FAILED, "person box (100.0, 100.0, 140.0, 140.0) lies outside"),
    "box overlapping the edge": (Status.OK, ""),
}


def write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    """Rows as a UTF-8 CSV manifest."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def without_file_permission_override() -> list[str]:
    """A command prefix under which root, too, is refused files it has no permission for."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: chmod cannot make a file unreadable")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def test_every_bad_medium_becomes_a_row_with_its_reason(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    rows = build_corpus(tmp_path / "corpus")
    manifest = write_manifest(tmp_path / "corpus" / "manifest.csv", rows)
    run_dir = tmp_path / "run"
    command = [
        *without_file_permission_override(),
        sys.executable, "-m", "emovlm", "eval",
        "--dataset", "manifest", "--root", str(manifest), "--label-set", "dfew",
        "--recognizer", "vlm", "--backend", "openai", "--base-url", server.url,
        "--model", "tiny-vlm", "--frames", "uniform:2", "--person", "crop",
        "--run-dir", str(run_dir), "--no-progress", "--bootstrap", "50",
    ]  # fmt: skip
    env = {**os.environ, "EMOVLM_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 of 13 samples name media that does not exist" in done.stderr

    with RunStore(run_dir) as store:
        (key,) = store.keys()
        predictions = {p.sample_id: p for p in store.rows(key)[0]}
    assert sorted(predictions) == sorted(row["id"] for row in rows)  # none dropped
    for sample_id, (status, reason) in EXPECTED.items():
        p = predictions[sample_id]
        assert (p.status, reason in p.reason) == (status, True), (sample_id, p.reason)
        if status is Status.OK:
            assert p.top == "happy"
    truncated = predictions["truncated, index kept"]  # read as the frames that are left, or failed
    assert truncated.status is Status.OK or "truncated_index_first.mp4" in truncated.reason
    assert (run_dir / "report.html").is_file()


def _manifest_lines(tmp_path: Path, lines: list[str], name: str = "manifest.csv") -> Path:
    """A manifest of these lines beside one good image, and the image outside its root."""
    root = tmp_path / "data"
    green_image(root / "good.png")
    green_image(tmp_path / "outside.png")
    path = root / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _dfew(tmp_path: Path, split_lines: list[str]) -> Path:
    """A DFEW layout whose fold-1 test split file has these lines."""
    root = tmp_path / "DFEW"
    (root / "Clip" / "clip_224x224" / "00001").mkdir(parents=True)
    split = root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_1.csv"
    split.parent.mkdir(parents=True)
    split.write_text("\n".join(split_lines) + "\n", encoding="utf-8")
    return root


UP_FRONT = {
    "path outside the root": (
        ["id,path,label", "a,good.png,happy", "b,../outside.png,sad"],
        "manifest.csv line 3: path '../outside.png' resolves outside the dataset root",
    ),
    "no label column": (
        ["id,path,emotion", "a,good.png,happy"],
        "manifest.csv line 1: missing column(s) label (or labels)",
    ),
    "no path column": (["id,file,label", "a,good.png,happy"], "missing column(s) path"),
    "unknown label": (
        ["id,path,label", "a,good.png,contempt"],
        "manifest.csv line 2: label 'contempt' is not in label set dfew",
    ),
    "reversed box": (
        ["id,path,label,box", 'a,good.png,happy,"20,20,10,10"'],
        "box '20,20,10,10' must have x2 > x1 and y2 > y1",
    ),
    "box that is not numbers": (
        ["id,path,label,box", "a,good.png,happy,left-half"],
        "box 'left-half' is not x1,y1,x2,y2 in pixels",
    ),
    "repeated id": (
        ["id,path,label", "a,good.png,happy", "b,good.png,sad", "a,good.png,sad"],
        "manifest.csv: sample 'a' is listed twice",
    ),
    "more fields than the header": (
        ["id,path,label", "a,good.png,happy,extra"],
        "line 2: more fields than the header has",
    ),
}


@pytest.mark.parametrize("case", list(UP_FRONT))
def test_bad_annotations_stop_before_the_run_with_one_line(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines, message = UP_FRONT[case]
    manifest = _manifest_lines(tmp_path, lines)
    _eval_fails(
        ["--dataset", "manifest", "--root", str(manifest), "--label-set", "dfew"],
        message,
        tmp_path,
        monkeypatch,
        capsys,
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("manifest.csv", b"id,path,label\na,caf\xe9.png,happy\n", "is not UTF-8 text"),
        (
            "manifest.jsonl",
            b'{"path": "good.png", "label": "happy"}\n{"path": \n',
            "manifest.jsonl line 2: not valid JSON",
        ),
    ],
)
def test_unreadable_manifest_files_stop_before_the_run(
    name: str,
    content: bytes,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = _manifest_lines(tmp_path, [], name)
    manifest.write_bytes(content)
    _eval_fails(
        ["--dataset", "manifest", "--root", str(manifest), "--label-set", "dfew"],
        message,
        tmp_path,
        monkeypatch,
        capsys,
    )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["video_name,emotion", "1,1"], "expected a header with columns video_name,label"),
        (["video_name,label", "1,9"], "line 2: expected a clip number and a label 0-7"),
        (["video_name,label", "1,happy"], "line 2: label 'happy' is not a number 0-7"),
    ],
)
def test_bad_dfew_split_files_stop_before_the_run(
    lines: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _dfew(tmp_path, lines)
    _eval_fails(["--dataset", "dfew", "--root", str(root)], message, tmp_path, monkeypatch, capsys)


def _eval_fails(
    dataset_args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`emovlm eval` exits 2 with `message` on one line, no traceback, and no run folder."""
    run_dir = tmp_path / "run"
    argv = ["emovlm", "eval", *dataset_args, "--recognizer", "majority", "--run-dir", str(run_dir)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err
    assert not run_dir.exists()
