"""Balanced evaluation subsets: equal seeded per-class counts, saved as manifests that reopen."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from emovlm.data.balanced import (
    balanced_samples,
    balanced_selection,
    parse_per_class,
    write_manifest,
)
from emovlm.data.base import open_dataset
from emovlm.errors import InputError
from emovlm.labels import get_label_space

COUNTS = {"happy": 9, "sad": 4, "neutral": 12, "angry": 6, "fear": 5}
DFEW = get_label_space("dfew")


@pytest.fixture()
def folder_root(tmp_path: Path) -> Path:
    """root/<label>/<n>.jpg with unequal class sizes (surprise and disgust have none)."""
    root = tmp_path / "faces"
    for label, count in COUNTS.items():
        (root / label).mkdir(parents=True)
        for i in range(count):
            (root / label / f"{label}-{i:02d}.jpg").write_bytes(b"")
    return root


def _folder(root: Path):  # type: ignore[no-untyped-def]
    return open_dataset("folder", root, label_set="dfew")


def test_subset_has_equal_counts_is_part_of_the_dataset_and_keeps_its_order(
    folder_root: Path,
) -> None:
    samples = list(_folder(folder_root).samples())
    chosen, selection = balanced_samples(samples, DFEW, 4, seed=0)
    assert Counter(s.labels[0] for s in chosen) == {label: 4 for label in COUNTS}
    ids = [s.id for s in samples]
    positions = [ids.index(s.id) for s in chosen]
    assert all(chosen[i] == samples[p] for i, p in enumerate(positions))
    assert positions == sorted(positions) == list(selection.indices)
    assert selection.available == {**dict.fromkeys(DFEW.labels, 0), **COUNTS}
    assert selection.summary()["absent_classes"] == ["surprise", "disgust"]


def test_same_seed_same_subset_other_seed_other_subset(folder_root: Path) -> None:
    samples = list(_folder(folder_root).samples())

    def ids(seed: int) -> list[str]:
        return [s.id for s in balanced_samples(samples, DFEW, "min", seed)[0]]

    assert ids(5) == ids(5)
    assert ids(5) != ids(6)
    assert len(ids(5)) == 5 * min(COUNTS.values())
    # sad is the smallest class: every seed takes all of it
    assert {i for i in ids(5) if i.startswith("sad/")} == {f"sad/sad-{i:02d}.jpg" for i in range(4)}


def test_a_class_pick_does_not_depend_on_other_classes() -> None:
    labels = ["happy"] * 10 + ["sad"] * 10
    more = labels + ["sad"] * 30
    happy_first = balanced_selection(labels, DFEW, 3, seed=1).indices[:3]
    assert balanced_selection(more, DFEW, 3, seed=1).indices[:3] == happy_first


def test_too_small_classes_are_an_error_unless_taken_whole(folder_root: Path) -> None:
    samples = list(_folder(folder_root).samples())
    with pytest.raises(InputError, match=r"fewer than 6 samples: sad \(4\), fear \(5\)"):
        balanced_samples(samples, DFEW, 6, seed=0)
    chosen, selection = balanced_samples(samples, DFEW, 6, seed=0, allow_fewer=True)
    assert Counter(s.labels[0] for s in chosen) == {
        "happy": 6,
        "sad": 4,
        "neutral": 6,
        "angry": 6,
        "fear": 5,
    }
    assert selection.short == ("sad", "fear")


def test_multi_label_sets_and_bad_counts_are_refused() -> None:
    with pytest.raises(InputError, match="multi-label"):
        balanced_selection(["anger"], get_label_space("emotic"), 1, seed=0)
    for text in ("0", "-2", "many"):
        with pytest.raises(InputError, match="--per-class"):
            parse_per_class(text)
    assert parse_per_class("MIN") == "min" and parse_per_class("12") == 12


def test_manifest_opens_with_the_manifest_adapter_and_matches_the_subset(folder_root: Path) -> None:
    chosen, _ = balanced_samples(list(_folder(folder_root).samples()), DFEW, 3, seed=2)
    manifest = folder_root.parent / "out" / "balanced.csv"
    assert write_manifest(chosen, manifest, folder_root) is True
    reopened = open_dataset("manifest", folder_root, manifest=manifest, label_set="dfew")
    again = list(reopened.samples())
    assert [(s.id, s.labels, s.media) for s in again] == [(s.id, s.labels, s.media) for s in chosen]


def test_boxes_survive_the_round_trip(tmp_path: Path) -> None:
    rows = [["id", "path", "label", "box"]]
    for i in range(6):
        label = "happy" if i < 4 else "sad"
        (tmp_path / f"{i}.jpg").write_bytes(b"")
        rows.append([f"s{i}", f"{i}.jpg", label, f"{i},{i + 0.5},{i + 10.25},{i + 20}"])
    with (tmp_path / "manifest.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    source = open_dataset("manifest", tmp_path, label_set="dfew")
    chosen, _ = balanced_samples(list(source.samples()), DFEW, 2, seed=0)
    out = tmp_path / "sub" / "balanced.csv"
    write_manifest(chosen, out, tmp_path)
    reopened = open_dataset("manifest", tmp_path, manifest=out, label_set="dfew")
    assert [(s.id, s.box) for s in reopened.samples()] == [(s.id, s.box) for s in chosen]


def test_cli_writes_manifest_summary_and_the_command_to_evaluate_it(
    folder_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "subsets" / "dfew-balanced.csv"
    command = [sys.executable, "-m", "emovlm", "balance", "--dataset", "folder"]
    command += ["--root", str(folder_root), "--label-set", "dfew", "--per-class", "min"]
    command += ["--seed", "11", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["per_class"] == 4 and summary["seed"] == 11 and summary["n"] == 20
    assert summary["taken"] == {**dict.fromkeys(DFEW.labels, 0), **dict.fromkeys(COUNTS, 4)}
    assert "--dataset manifest" in summary["eval_command"]
    reopened = open_dataset("manifest", folder_root, manifest=out, label_set="dfew")
    assert len(reopened) == 20

    command[command.index("min")] = "5"
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "--allow-fewer" in done.stderr
