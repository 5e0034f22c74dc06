"""`emovlm finetune` and `emovlm export` as a user runs them: run folders, comparisons, resume, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from test_train_export import check_llava, check_sharegpt
from test_train_faceset import FaceSet, build_face_set
from tiny_models import build_tiny_qwen2_vl

FINETUNE_TIMEOUT = 600


def emovlm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess."""
    cmd = [sys.executable, "-m", "emovlm", *map(str, args)]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=FINETUNE_TIMEOUT, check=False
    )


@pytest.fixture(scope="module")
def face_set(tmp_path_factory: pytest.TempPathFactory, asset: Callable[[str], Path]) -> FaceSet:
    return build_face_set(tmp_path_factory.mktemp("faceset"), asset)


def _data(face_set: FaceSet) -> list[str]:
    return ["--dataset", "manifest", "--root", str(face_set.root), "--label-set", "dfew"]


@pytest.mark.slow
def test_specialist_finetune_writes_heads_logs_reports_and_the_comparison(
    face_set: FaceSet, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = [
        "finetune",
        *_data(face_set),
        "--sampler",
        "class-balanced",
        "--allow-missing-classes",
        "--run-dir",
        run,
        "--feature-cache",
        tmp_path / "features",
        "--bootstrap",
        "50",
        "--no-progress",
    ]
    result = emovlm(*args)
    assert result.returncode == 0, result.stderr
    assert "| sad | 3 | 8 |" in result.stdout  # the comparison table is printed
    assert "| angry | 0 | 0 | — | — | — |" in result.stdout  # no test samples, no recall
    config = yaml.safe_load((run / "finetune.yaml").read_text())["config"]
    assert config["target"] == "specialist" and config["head"]["sampler"] == "class-balanced"
    log = json.loads((run / "training_log.json").read_text())
    assert set(log) == {"instance", "class-balanced"}
    assert all(
        len(epochs) == 10 and epochs[-1]["loss"] < epochs[0]["loss"] for epochs in log.values()
    )
    comparison = json.loads((run / "comparison.json").read_text())
    assert comparison["variants"] == ["instance", "class-balanced"]
    recall = {row["label"]: row["recall"] for row in comparison["per_class"]}
    assert recall["sad"]["class-balanced"] >= recall["sad"]["instance"]
    assert "recall instance" in (run / "comparison.md").read_text()
    assert (run / "eval" / "report.html").is_file() and (run / "eval" / "store.sqlite").is_file()

    head = run / "heads" / "class-balanced.pt"
    evaluated = emovlm(
        "eval",
        *_data(face_set),
        "--head",
        head,
        "--run-dir",
        tmp_path / "eval",
        "--bootstrap",
        "50",
        "--no-progress",
    )
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["per_class"]["sad"]["recall"] == recall["sad"]["class-balanced"]

    again = emovlm(*args)
    assert again.returncode == 2 and "pass --resume" in again.stderr
    resumed = emovlm(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    changed = emovlm(*[a if a != "class-balanced" else "square-root" for a in args], "--resume")
    assert changed.returncode == 2 and "other settings (head.sampler)" in changed.stderr


def test_bad_flags_and_data_are_one_line_errors_before_training(
    face_set: FaceSet, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    wrong_sampler = emovlm(
        "finetune", *_data(face_set), "--sampler", "oversample", "--run-dir", run
    )
    assert wrong_sampler.returncode == 2
    assert (
        "unknown sampler 'oversample'" in wrong_sampler.stderr
        and "Traceback" not in wrong_sampler.stderr
    )
    wrong_target = emovlm("finetune", *_data(face_set), "--lora-rank", "4", "--run-dir", run)
    assert (
        wrong_target.returncode == 2
        and "--lora-rank does not apply to --target specialist" in wrong_target.stderr
    )
    missing = emovlm("finetune", *_data(face_set), "--run-dir", run)
    assert missing.returncode == 2 and "have no samples in the training split" in missing.stderr
    no_model = emovlm(
        "finetune", "--target", "vlm", *_data(face_set), "--allow-missing-classes", "--run-dir", run
    )
    assert no_model.returncode == 2 and "--target vlm needs --model" in no_model.stderr
    assert not run.exists()


@pytest.mark.slow
def test_vlm_finetune_trains_an_adapter_compares_it_with_the_base_and_resumes(
    tmp_path: Path, asset: Callable[[str], Path]
) -> None:
    small = build_face_set(tmp_path / "faces", asset, {"happy": 6, "neutral": 3, "sad": 2}, 2)
    model = build_tiny_qwen2_vl(tmp_path / "qwen")
    run = tmp_path / "run"
    args = [
        "finetune",
        "--target",
        "vlm",
        *_data(small),
        "--model",
        model,
        "--image-size",
        "56",
        "--learning-rate",
        "2e-2",
        "--lora-rank",
        "4",
        "--grad-accum",
        "2",
        "--allow-missing-classes",
        "--run-dir",
        run,
        "--bootstrap",
        "20",
        "--no-progress",
    ]
    result = emovlm(*args, "--epochs", "2")
    assert result.returncode == 0, result.stderr
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-001", "epoch-002"]
    comparison = json.loads((run / "comparison.json").read_text())
    assert comparison["variants"] == ["base", "adapter"]
    log = json.loads((run / "training_log.json").read_text())["lora (class-balanced)"]
    assert [e["epoch"] for e in log] == [1, 2] and all(e["examples"] == 11 for e in log)

    longer = emovlm(*args, "--epochs", "3", "--resume")
    assert longer.returncode == 0, longer.stderr
    log = json.loads((run / "training_log.json").read_text())["lora (class-balanced)"]
    assert [e["epoch"] for e in log] == [1, 2, 3]

    out = tmp_path / "export"
    exported = emovlm("export", *_data(small), "--split", "train", "--out", out, "--no-progress")
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in (out / "llava.jsonl").read_text().splitlines()]
    assert len(records) == 11 and all(check_llava(r) for r in records)
    shared = [json.loads(line) for line in (out / "sharegpt.jsonl").read_text().splitlines()]
    assert all(check_sharegpt(r) for r in shared)
