"""The command line as a user runs it: predict, eval (with resume), fetch and the errors they give."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


def emovlm(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess."""
    cmd = [sys.executable, "-m", "emovlm", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=300, check=False)


def test_predict_json_on_a_real_photo(asset: Callable[[str], Path]) -> None:
    result = emovlm("predict", asset("astronaut"), "--json", "--faces", "haar")
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    assert record["label"] == "happy"
    assert record["status"] == "ok"
    assert record["probability"] > 0.5


@pytest.fixture()
def photo_manifest(tmp_path: Path, asset: Callable[[str], Path]) -> Path:
    """A manifest dataset of four real labelled photos, one of them with a space in its name."""
    root = tmp_path / "photos"
    root.mkdir()
    rows = []
    for name, label in [
        ("feat-happy", "happy"),
        ("feat-surprise", "surprise"),
        ("feat-angry", "angry"),
        ("astronaut", "happy"),
    ]:
        target = root / f"{name} photo{asset(name).suffix}"
        shutil.copy(asset(name), target)
        rows.append([name, target.name, label])
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows([["id", "path", "label"], *rows])
    return manifest


def test_eval_writes_a_run_folder_refuses_to_overwrite_and_resumes(
    photo_manifest: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = [
        "eval",
        "--dataset",
        "manifest",
        "--root",
        photo_manifest.parent,
        "--label-set",
        "fer2013",
        "--dataset-option",
        f"manifest={photo_manifest.name}",
        "--run-dir",
        run,
        "--no-progress",
        "--bootstrap",
        "100",
        "--faces",
        "haar",
    ]
    first = emovlm(*args)
    assert first.returncode == 0, first.stderr
    assert "4 samples (4 new" in first.stdout
    for name in ("config.yaml", "store.sqlite", "metrics.json", "report.md", "report.html"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == 4 and metrics["war"] >= 0.75

    again = emovlm(*args)
    assert again.returncode == 2
    assert "--resume" in again.stderr

    resumed = emovlm(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "4 samples (0 new, 4 resumed" in resumed.stdout
    assert json.loads((run / "metrics.json").read_text())["war"] == metrics["war"]


def test_eval_reads_a_yaml_config_and_flags_override_it(
    photo_manifest: Path, tmp_path: Path
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        f"dataset: manifest\nroot: {photo_manifest.parent}\nlabel-set: fer2013\nlimit: 1\n"
        f"dataset_options: {{manifest: {photo_manifest.name}}}\nrecognizer_options: {{faces: haar}}\n"
    )
    result = emovlm(
        "eval",
        "--config",
        config,
        "--run-dir",
        tmp_path / "r",
        "--limit",
        "2",
        "--no-progress",
        "--bootstrap",
        "0",
    )
    assert result.returncode == 0, result.stderr
    assert "2 samples (2 new" in result.stdout


def test_a_config_file_that_is_not_yaml_is_named_with_its_line(tmp_path: Path) -> None:
    from emovlm.commands.eval import _load_config
    from emovlm.errors import InputError

    config = tmp_path / "run.yaml"
    config.write_text("dataset: manifest\nrecognizer_options: {faces: haar\nlimit: 2\n")
    with pytest.raises(InputError, match=r"run\.yaml is not valid YAML at line \d+ \(.*\); fix"):
        _load_config(config)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "missing.jpg"], "missing.jpg does not exist"),
        (["predict", "x.jpg", "--label-set", "nope"], "unknown label set 'nope'"),
        (["eval", "--dataset", "dfew"], "give --dataset and --root"),
        (["eval", "--dataset", "nope", "--root", "."], "unknown dataset 'nope'"),
        (["fetch", "weights"], "unknown bundle 'weights'"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    (tmp_path / "x.jpg").write_bytes(b"")
    result = emovlm(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_option_that_does_not_apply_to_the_recognizer_is_refused(
    asset: Callable[[str], Path],
) -> None:
    result = emovlm("predict", asset("astronaut"), "--backend", "openai")
    assert result.returncode == 2
    assert "--backend does not apply to --recognizer specialist" in result.stderr


def test_help_teaches_with_examples() -> None:
    result = emovlm("eval", "--help")
    assert result.returncode == 0
    assert (
        "--resume" in result.stdout and "Examples" in result.stdout and "--frames" in result.stdout
    )


@pytest.mark.slow
def test_demo_runs_to_the_end_from_a_relative_output_folder(tmp_path: Path) -> None:
    result = emovlm("demo", "--out", "demo-out", "--faces", "haar", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "astronaut.png: gold happy, predicted happy" in result.stdout
    assert "no face found" in result.stdout
    html = (tmp_path / "demo-out" / "run" / "report.html").read_text()
    assert 'alt="emotion timeline of single_face.mp4"' in html
