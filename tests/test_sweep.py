"""`emovlm sweep` with the offline specialist (real weights) on real face videos and photos."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emovlm.data.base import open_dataset
from emovlm.errors import InputError
from emovlm.run.store import RunStore
from emovlm.run.sweep import (
    PAPER_FPS,
    Setting,
    fps_experiment,
    grid_experiment,
    msce_experiment,
    run_sweep,
    shuffle_experiment,
)
from openai_server import FakeOpenAIServer

MEDIA = {
    "feat-video-single-face": "happy",  # a neutral face breaks into a smile
    "feat-video-pexels": "sad",  # sadness and crying, then surprise and a smile
    "astronaut": "happy",
    "feat-happy": "happy",
    "feat-surprise": "surprise",
    "feat-angry": "angry",
}
VIDEOS = 2


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, asset: Callable[[str], Path]) -> Path:
    """A manifest dataset of the two real face videos and four real photos, labelled by what they show."""
    root = tmp_path_factory.mktemp("real-faces")
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "path", "label"])
        for name, label in MEDIA.items():
            source = asset(name)
            shutil.copy(source, root / f"{name}{source.suffix}")
            writer.writerow([name, f"{name}{source.suffix}", label])
    return root


def emovlm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess."""
    command = [sys.executable, "-m", "emovlm", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_experiments_name_their_settings_and_reference() -> None:
    fps = fps_experiment("specialist")
    assert [s.name for s in fps.settings] == [f"fps:{v}" for v in PAPER_FPS]
    assert fps.settings[1] == Setting("fps:5", "specialist", {"frames": "fps:5"}, 5.0)
    assert fps.reference == "fps:1" and fps.with_reference("5").reference == "fps:5"
    shuffle = shuffle_experiment("vlm", "uniform:8", [0, 3])
    assert [s.options["frames"] for s in shuffle.settings] == [
        "uniform:8",
        "uniform:8+shuffle:0",
        "uniform:8+shuffle:3",
    ]
    msce = msce_experiment(8, 4, ["sparse", "dense", "msce-specialist-text"])
    assert [s.recognizer for s in msce.settings] == ["vlm", "vlm", "msce"]
    assert msce.settings[1].options == {"frames": "uniform:36"}  # 8 keyframes + 7 gaps × 4
    assert msce.settings[2].options == {
        "keyframes": 8,
        "per_gap": 4,
        "describer": "specialist",
        "stage2": "text",
    }
    grid = grid_experiment(
        "specialist", {"frames": ["fps:5", "all"], "aggregate": ["mean", "peak"]}
    )
    assert [s.name for s in grid.settings][:2] == [
        "frames=fps:5,aggregate=mean",
        "frames=fps:5,aggregate=peak",
    ]
    assert len(grid.settings) == 4 and grid.reference == grid.settings[0].name
    assert grid_experiment("specialist", {"face_step": [5, 10]}).settings[1].value == 10.0


def test_bad_experiments_are_refused() -> None:
    with pytest.raises(InputError, match="reference 'fps:7' is not a setting"):
        fps_experiment("specialist", [1, 5]).with_reference("fps:7")
    with pytest.raises(InputError, match="unknown msce variant"):
        msce_experiment(variants=["sparse", "msce-clip"])
    with pytest.raises(InputError, match="repeats a setting"):
        fps_experiment("specialist", [5, 5])
    with pytest.raises(InputError, match="no settings"):
        fps_experiment("specialist", [])


def test_options_that_no_setting_takes_are_refused_before_running(
    media: Path, tmp_path: Path
) -> None:
    data = open_dataset("manifest", media, label_set="dfew")
    with pytest.raises(InputError, match="--base-url does not apply"):
        run_sweep(
            data,
            fps_experiment("specialist", [1]),
            tmp_path,
            dataset_config=data.config(),
            options={"base_url": "http://127.0.0.1:1/v1"},
        )
    with pytest.raises(InputError, match="--aggregat does not apply to --recognizer specialist"):
        run_sweep(
            data,
            grid_experiment("specialist", {"aggregat": ["mean"]}),
            tmp_path,
            dataset_config=data.config(),
        )
    emotic = open_dataset("manifest", media, label_set="emotic")
    with pytest.raises(InputError, match="emotic is multi-label"):
        run_sweep(emotic, fps_experiment("specialist", [1]), tmp_path, dataset_config={})
    assert not (tmp_path / "store.sqlite").exists()


@pytest.mark.slow
def test_frame_rate_sweep_with_the_specialist_writes_one_row_per_fps_and_resumes(
    media: Path, tmp_path: Path
) -> None:
    run = tmp_path / "fps-run"
    args = ["sweep", "--dataset", "manifest", "--root", media, "--label-set", "dfew"]
    args += ["--experiment", "fps", "--values", "1,5", "--values", "10", "--faces", "haar"]
    args += ["--run-dir", run, "--bootstrap", "200", "--no-progress"]
    result = emovlm(*args)
    assert result.returncode == 0, result.stderr
    assert "sweep fps · 6 samples" in result.stdout
    summary = json.loads((run / "sweep.json").read_text())
    rows = summary["settings"]
    assert [s["name"] for s in rows] == ["fps:1", "fps:5", "fps:10"]
    assert [s["value"] for s in rows] == [1.0, 5.0, 10.0]
    assert summary["n"] == len(MEDIA) and all(s["failed"] == 0 for s in rows)
    assert rows[0]["difference"] is None
    for s in rows[1:]:
        for metric in ("macro_f1", "uar", "war"):
            difference = s["difference"][metric]
            assert difference["diff"] == pytest.approx(
                s["metrics"][metric] - rows[0]["metrics"][metric]
            )
            low, high = difference["ci"]
            assert low <= difference["diff"] <= high
    # Denser sampling costs more specialist time per clip.
    assert rows[2]["cost_per_clip"]["seconds"] > rows[0]["cost_per_clip"]["seconds"]
    table = (run / "sweep.md").read_text()
    assert "| fps:10 |" in table and "## Differences to fps:1 (paired)" in table
    assert (run / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    with RunStore(run) as store:
        assert sorted(store.keys()) == sorted(s["key"] for s in rows)
        written = [len(store.rows(s["key"])[0]) for s in rows]
    again = emovlm(*args)  # resumes: every row is there, nothing is predicted again
    assert again.returncode == 0, again.stderr
    with RunStore(run) as store:
        assert [len(store.rows(s["key"])[0]) for s in rows] == written
    assert json.loads((run / "sweep.json").read_text())["settings"] == rows


def test_shuffle_test_with_the_specialist_is_a_bag_of_frames(media: Path, tmp_path: Path) -> None:
    data = open_dataset("manifest", media, label_set="dfew")
    result = run_sweep(
        data,
        shuffle_experiment("specialist", "fps:5", [0]),
        tmp_path,
        dataset_config=data.config(),
        options={"faces": "haar"},
        n_bootstrap=200,
        progress=False,
    )
    original, shuffled = result.summary["settings"]
    assert (original["options"]["frames"], shuffled["options"]["frames"]) == (
        "fps:5",
        "fps:5+shuffle:0",
    )
    difference = shuffled["difference"]["macro_f1"]
    low, high = difference["ci"]
    assert low <= 0 <= high and abs(difference["diff"]) < 0.2
    table = result.files["md"].read_text()
    assert "bag of frames" in table and "ignore frame order by construction" in table


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime=300) as srv:
        yield srv


@pytest.mark.slow
def test_sparse_vs_msce_with_the_specialist_describer_on_real_videos(
    media: Path, tmp_path: Path, server: FakeOpenAIServer
) -> None:
    data = open_dataset("manifest", media, label_set="dfew")
    options = {
        "backend": "openai",
        "model": "tiny-vlm",
        "base_url": server.url,
        "faces": "haar",
        "cache": False,
    }
    result = run_sweep(
        data,
        msce_experiment(4, 4, ["sparse", "msce-specialist-text"]),
        tmp_path,
        dataset_config=data.config(),
        options=options,
        n_bootstrap=200,
        progress=False,
    )
    sparse, text = result.summary["settings"]
    assert sparse["options"]["frames"] == "uniform:4" and "describer" not in sparse["options"]
    assert text["options"]["describer"] == "specialist" and text["options"]["stage2"] == "text"
    assert sparse["failed"] == 0 and sparse["cost_per_clip"]["calls"] == 1
    assert text["failed"] == len(MEDIA) - VIDEOS  # photos have no motion to put into words
    assert text["difference"]["war"]["ci"] is not None
    table = result.files["md"].read_text()
    assert "| msce-specialist-text |" in table and "## Differences to sparse (paired)" in table
    with RunStore(tmp_path) as store:
        predictions, _ = store.rows(text["key"])
    smile = next(p for p in predictions if p.sample_id == "feat-video-single-face")
    assert any("happiness rises" in sentence for sentence in smile.extra["sentences"])
