"""Videos streamed through the specialist: per-frame tables, stable face ids, flat memory, bad input.

Every video here is written with PyAV from real face images and the real face video that
`emovlm fetch` installs; nothing is mocked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest

import emovlm
from emovlm.errors import MediaError
from emovlm.eval.tables import frame_table, per_second, write_table
from emovlm.labels import get_label_space
from emovlm.recognizers.specialist import SpecialistRecognizer
from emovlm.types import Sample, Status
from emovlm.video import iter_frames, load_image

FER2013 = get_label_space("fer2013")
WIDTH, HEIGHT, FACE = 320, 160, 110


@pytest.fixture(scope="module")
def recognizer() -> SpecialistRecognizer:
    return SpecialistRecognizer(FER2013, all_faces=True)


def write_video(
    path: Path,
    images: Sequence[np.ndarray],
    *,
    times: Sequence[float] | None = None,
    fps: int = 25,
    rotation: int = 0,
    index_first: bool = False,
) -> Path:
    """Encode RGB images into an H.264 MP4; `times` (s) gives each frame its own timestamp;
    `index_first` puts the index (moov) before the frames, as web-ready files have it."""
    height, width = images[0].shape[:2]
    options = {"movflags": "faststart"} if index_first else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = round(1000 * (times[i] if times is not None else i / fps))
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def face(asset: Callable[[str], Path], name: str, size: int = FACE) -> np.ndarray:
    """A real face photo shrunk to size×size pixels."""
    return cv2.resize(load_image(asset(name)), (size, size), interpolation=cv2.INTER_AREA)


def scene(faces: Sequence[tuple[np.ndarray, int, int]]) -> np.ndarray:
    """A grey WIDTH×HEIGHT frame with face images pasted at their (x, y) corners."""
    image = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    for picture, x, y in faces:
        image[y : y + picture.shape[0], x : x + picture.shape[1]] = picture
    return image


def test_per_frame_table_agrees_with_the_clip_prediction(
    recognizer: SpecialistRecognizer, asset: Callable[[str], Path], tmp_path: Path
) -> None:
    (pred,) = recognizer.predict([Sample("clip", asset("feat-video-single-face"))])
    table = frame_table([pred])
    frames = pred.frames
    assert len(table) == len(frames) == 72  # one row per analysed frame: one face each
    assert np.array_equal(table["frame"], frames.index)
    assert np.array_equal(table["time"], frames.time)
    assert np.allclose(table.emo.probabilities.to_numpy(), frames.probs)
    assert np.allclose(table.emo.boxes.to_numpy(), frames.box)
    main = table[table["main"]]
    clip = main.emo.probabilities.mean().to_dict()  # the clip label is the mean over frames
    assert clip == pytest.approx(dict(pred.scores), abs=1e-5)
    assert (table["label"] == pred.top).all() and str(table["label"].dtype) == "category"
    summary = per_second(table)
    assert summary["frames"].tolist() == [30, 30, 12]  # 2.4 s at 30 frames/s
    saved = read_back(write_table(table, tmp_path / "frames.csv"))
    assert np.allclose(saved.filter(like="p_").to_numpy(), table.filter(like="p_").to_numpy())


def read_back(path: Path) -> pd.DataFrame:
    """A table written by write_table, read again."""
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def test_two_faces_keep_their_track_ids(asset: Callable[[str], Path], tmp_path: Path) -> None:
    happy, angry = face(asset, "feat-happy"), face(asset, "feat-angry", 90)
    images = [scene([(happy, 10 + i, 25), (angry, 210 - i, 35)]) for i in range(40)]
    video = write_video(tmp_path / "two.mp4", images)
    table = emovlm.predict(video, all_faces=True)
    assert len(table) == 80 and table.groupby("frame").size().eq(2).all()
    centre = (table["x1"] + table["x2"]) / 2
    sides = table.assign(left=centre < WIDTH / 2).groupby("track")["left"].agg(["all", "any"])
    assert len(sides) == 2  # two ids for the whole video, each always on its own side
    assert sorted(sides["all"] | ~sides["any"]) == [True, True]
    assert table.groupby("frame")["main"].sum().eq(1).all()
    main_only = emovlm.predict(video)
    assert len(main_only) == 40 and main_only["main"].all() and main_only["track"].nunique() == 1


def test_predict_warns_of_each_file_that_gives_no_rows(
    asset: Callable[[str], Path], tmp_path: Path
) -> None:
    video = write_video(tmp_path / "one.mp4", [scene([(face(asset, "feat-happy"), 100, 25)])] * 8)
    empty = write_video(tmp_path / "nobody.mp4", [scene([])] * 8)
    missing = tmp_path / "typo.mp4"
    with pytest.warns(UserWarning) as warned:
        table = emovlm.predict([video, missing, empty])
    assert table["sample_id"].astype(str).eq(str(video)).all() and len(table) == 8
    said = [str(warning.message) for warning in warned]
    assert len(said) == 2 and "typo.mp4: no such file" in said[0] and "nobody.mp4" in said[1]
    assert set(table.attrs["failed"]) == {str(missing), str(empty)}


@pytest.mark.parametrize("all_faces", [False, True])
def test_a_face_that_leaves_and_returns_leaves_a_marked_gap(
    all_faces: bool, asset: Callable[[str], Path], tmp_path: Path
) -> None:
    happy = face(asset, "feat-happy")
    present = [scene([(happy, 100, 25)])] * 23  # it leaves and comes back between keyframes
    video = write_video(tmp_path / "away.mp4", present + [scene([])] * 14 + present)
    recognizer = SpecialistRecognizer(FER2013, all_faces=all_faces)
    (pred,) = recognizer.predict([Sample("away", video)])
    assert pred.status is Status.OK
    table = frame_table([pred])
    assert len(table) == 60  # every frame has its row, with or without a face
    faceless = table.loc[~table["face"], "frame"]  # to the frame, though faces are searched
    assert faceless.tolist() == list(range(23, 37))  # for only on every 10th (the face step)
    assert table.loc[~table["face"], ["x1", "p_happy"]].isna().all().all()
    assert table.loc[table["face"], "track"].nunique() == 1  # the same person comes back
    (gap,) = [g for g in pred.extra["gaps"] if g["reason"] == "no face"]
    assert (gap["start"], gap["end"]) == pytest.approx((23 / 25, 36 / 25))


def test_variable_frame_rate_keeps_real_times_and_marks_the_stall(
    recognizer: SpecialistRecognizer, asset: Callable[[str], Path], tmp_path: Path
) -> None:
    picture = scene([(face(asset, "feat-surprise"), 100, 25)])
    times = [i / 25 for i in range(20)] + [3.0 + i / 10 for i in range(10)]  # 25 fps, stall, 10 fps
    video = write_video(tmp_path / "vfr.mp4", [picture] * 30, times=times)
    (pred,) = recognizer.predict([Sample("vfr", video)])
    assert pred.frames.time == pytest.approx(times, abs=2e-3)
    (stall,) = [g for g in pred.extra["gaps"] if g["reason"] == "no frames in the stream"]
    assert stall["start"] == pytest.approx(0.76, abs=2e-3)
    assert stall["end"] == pytest.approx(3.0, abs=2e-3)
    summary = per_second(frame_table([pred]))
    assert summary["frames"].tolist() == [20, 0, 0, 10]
    assert summary.loc[summary["frames"] == 0, "label"].eq("").all()


def test_a_rotated_phone_video_is_analysed_upright(
    recognizer: SpecialistRecognizer, asset: Callable[[str], Path], tmp_path: Path
) -> None:
    upright = np.full((WIDTH, HEIGHT, 3), 128, np.uint8)  # portrait: 160 wide, 320 high
    upright[100 : 100 + FACE, 25 : 25 + FACE] = face(asset, "feat-happy")
    stored = np.rot90(upright, -1)  # the display matrix turns it back a quarter counter-clockwise
    video = write_video(tmp_path / "phone.mp4", [stored] * 12, rotation=90)
    (pred,) = recognizer.predict([Sample("phone", video)])
    assert pred.status is Status.OK and pred.frames.main.all()
    x1, y1, x2, y2 = np.median(pred.frames.box, axis=0)
    assert 0 <= x1 < x2 <= HEIGHT + 20 and 80 <= (y1 + y2) / 2 <= 230  # displayed coordinates


def cut_short(asset: Callable[[str], Path], path: Path) -> Path:
    """A 50-frame video of a happy face whose last fifth of frame data is cut off, as a download
    cut short: its index (at the front) survives. Fewer frames than one chunk, so the frames
    before the break must not go with it."""
    rng = np.random.default_rng(0)
    picture = face(asset, "feat-happy")
    images = [
        scene([(picture, 100, 25)]) ^ rng.integers(0, 8, (HEIGHT, WIDTH, 3), np.uint8)
        for _ in range(50)
    ]
    data = write_video(path, images, index_first=True).read_bytes()
    frames_start = data.index(b"mdat")
    path.write_bytes(data[: len(data) - (len(data) - frames_start) // 5])
    return path


def test_a_truncated_video_keeps_the_frames_that_decode(
    recognizer: SpecialistRecognizer, asset: Callable[[str], Path], tmp_path: Path
) -> None:
    video = cut_short(asset, tmp_path / "cut.mp4")
    decoded: list[int] = []
    with pytest.raises(MediaError):  # the decoder's own view of the damage
        for frame in iter_frames(video):
            decoded.append(frame.index)
    assert 0 < len(decoded) < 50
    (pred,) = recognizer.predict([Sample("cut", video)])
    assert pred.status is Status.OK and pred.top == "happy", pred.reason
    kept = list(pred.frames.index)
    assert kept == sorted(set(kept)) and set(decoded) <= set(kept) and len(kept) < 50
    (broken,) = [g for g in pred.extra["gaps"] if g["reason"].startswith("not decoded")]
    assert broken["start"] == pytest.approx(pred.frames.time[-1])
    assert "cut.mp4" in broken["reason"] and "truncated" in broken["reason"]


def test_predict_names_the_gaps_of_a_truncated_video(
    asset: Callable[[str], Path], tmp_path: Path
) -> None:
    video = cut_short(asset, tmp_path / "cut.mp4")
    command = [sys.executable, "-m", "emovlm", "predict", str(video)]
    shown = subprocess.run(command, capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "cut.mp4 gaps:" in shown.stdout and "s not decoded" in shown.stdout
    as_json = subprocess.run([*command, "--json"], capture_output=True, text=True, check=False)
    (record,) = json.loads(as_json.stdout)
    assert record["status"] == "ok" and record["label"] == "happy"
    assert [gap["reason"][:11] for gap in record["gaps"]] == ["not decoded"]


def test_eval_reports_the_gaps_of_each_video(asset: Callable[[str], Path], tmp_path: Path) -> None:
    root = tmp_path / "clips"
    root.mkdir()
    happy = face(asset, "feat-happy")
    present = [scene([(happy, 100, 25)])] * 20
    write_video(root / "away.mp4", present + [scene([])] * 30 + present)
    cut_short(asset, root / "cut.mp4")
    (root / "clips.csv").write_text("id,path,label\naway,away.mp4,happy\ncut,cut.mp4,happy\n")
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "emovlm", "eval", "--dataset", "manifest", "--root", str(root),
        "--dataset-option", "manifest=clips.csv", "--label-set", "fer2013",
        "--run-dir", str(run), "--no-progress", "--bootstrap", "20",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "metrics.json").read_text())["war"] == 1.0  # both scored, right
    report = (run / "report.md").read_text()
    section = report[report.index("## Gaps in per-frame results") :]
    assert re.search(r"\| away \| [0-9.]+-[0-9.]+ s no face \|", section)
    assert re.search(r"\| cut \| [0-9.]+-[0-9.]+ s not decoded: .*cut\.mp4", section)
    assert "Gaps in per-frame results" in (run / "report.html").read_text()


def test_predict_writes_the_frame_table(asset: Callable[[str], Path], tmp_path: Path) -> None:
    out = tmp_path / "frames.parquet"
    video = asset("feat-video-single-face")
    done = subprocess.run(
        [sys.executable, "-m", "emovlm", "predict", str(video), "--frames-out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(out)
    assert len(table) == 72 and table["sample_id"].astype(str).eq(str(video)).all()
    assert {"time", "frame", "track", "x1", "y2", "p_happy", "label"} <= set(table.columns)
    bad = subprocess.run(
        [sys.executable, "-m", "emovlm", "predict", str(video), "--frames-out", "x.txt"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "--frames-out x.txt" in bad.stderr + bad.stdout


def loop_video(source: Path, path: Path, times: int, width: int = 320) -> Path:
    """The source video played `times` times over, shrunk to `width` pixels, streamed to `path`."""
    frames = list(iter_frames(source))
    height = round(frames[0].image.shape[0] * width / frames[0].image.shape[1] / 2) * 2
    small = [cv2.resize(f.image, (width, height), interpolation=cv2.INTER_AREA) for f in frames]
    return write_video(path, [image for _ in range(times) for image in small], fps=30)


def peak_mib_of_predict(video: Path) -> float:
    """Peak resident memory (MiB) of `emovlm predict VIDEO` run in a fresh process."""
    script = (
        "import resource, sys, json; from emovlm.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "predict", str(video), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_video_length(
    asset: Callable[[str], Path], tmp_path: Path
) -> None:
    """216 frames against 2,160 (160×90): holding them all would add 93 MiB; streaming adds none.

    Both videos fill several chunks, so what one chunk holds counts the same in each.
    """
    source = asset("feat-video-single-face")
    short = peak_mib_of_predict(loop_video(source, tmp_path / "short.mp4", 3, width=160))
    long = peak_mib_of_predict(loop_video(source, tmp_path / "long.mp4", 30, width=160))
    assert long < short + 40, json.dumps({"short_mib": short, "long_mib": long})


def test_no_read_ahead_thread_outlives_a_prediction(
    recognizer: SpecialistRecognizer, asset: Callable[[str], Path], tmp_path: Path
) -> None:
    picture = face(asset, "feat-happy")
    whole = write_video(tmp_path / "whole.mp4", [scene([(picture, 100, 25)])] * 80)
    cut = write_video(tmp_path / "cut.avi", [scene([(picture, 100, 25)])] * 80)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 2 // 3])
    predictions = recognizer.predict([Sample("whole", whole), Sample("cut", cut)])
    assert predictions[0].status is Status.OK and len(predictions[0].frames.index) == 80
    assert not [t for t in threading.enumerate() if t.name == "emovlm-read-ahead"]
