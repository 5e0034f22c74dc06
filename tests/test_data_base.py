"""The dataset registry, open_dataset, and the path helpers shared by the adapters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emovlm.data.base import DATASETS, as_bool, open_dataset
from emovlm.data.paths import index_media, is_inside, unwrap_nested
from emovlm.errors import InputError


def test_every_adapter_is_registered_and_importable() -> None:
    assert DATASETS.names() == ["dfew", "ferv39k", "mafw", "emotic", "folder", "manifest"]
    for name in DATASETS.names():
        factory = DATASETS.get(name)
        assert factory.name == name
        assert DATASETS.describe(name)[0]


def test_open_dataset_refuses_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"does not exist; check --root"):
        open_dataset("folder", tmp_path / "nope")


def test_open_dataset_names_unknown_options(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"does not take option\(s\) media.*label_set"):
        open_dataset("folder", tmp_path, media="x")


def test_open_dataset_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown dataset 'affwild'"):
        open_dataset("affwild", tmp_path)


def test_open_dataset_passes_split_and_config_is_json(tmp_path: Path) -> None:
    (tmp_path / "train" / "happy").mkdir(parents=True)
    (tmp_path / "train" / "happy" / "a.jpg").write_bytes(b"")
    data = open_dataset("folder", str(tmp_path), split="train")
    config = json.loads(json.dumps(data.config()))
    assert config == {
        "name": "folder",
        "root": str(tmp_path),
        "split": "train",
        "fold": 1,
        "options": {"label_set": "fer2013"},
    }


def test_fold_given_as_text_is_read_as_a_number(tmp_path: Path) -> None:
    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / "a.jpg").write_bytes(b"")
    assert open_dataset("folder", tmp_path, fold="1").config()["fold"] == 1
    with pytest.raises(InputError, match="whole number"):
        open_dataset("folder", tmp_path, fold="one")


@pytest.mark.parametrize(("text", "value"), [("true", True), ("No", False), (True, True)])
def test_as_bool(text: object, value: bool) -> None:
    assert as_bool(text, "x") is value


def test_as_bool_rejects_other_text() -> None:
    with pytest.raises(InputError, match="must be true or false"):
        as_bool("maybe", "allow_outside_root")


def test_is_inside(tmp_path: Path) -> None:
    assert is_inside(tmp_path / "a" / "b.jpg", tmp_path)
    assert not is_inside(tmp_path / "a" / ".." / ".." / "b.jpg", tmp_path)
    assert not is_inside(tmp_path.parent / (tmp_path.name + "x") / "b.jpg", tmp_path)


def test_index_media_finds_files_folders_and_one_level_down(tmp_path: Path) -> None:
    (tmp_path / "00002").mkdir()
    (tmp_path / "part_1").mkdir()
    (tmp_path / "part_1" / "3.mp4").write_bytes(b"")
    (tmp_path / "1.avi").write_bytes(b"")
    (tmp_path / "4.txt").write_bytes(b"")
    index = index_media(tmp_path, lambda n: f"{int(n):05d}" if n.isdigit() else None)
    assert index == {
        "00001": tmp_path / "1.avi",
        "00002": tmp_path / "00002",
        "00003": tmp_path / "part_1" / "3.mp4",
    }


def test_unwrap_nested(tmp_path: Path) -> None:
    (tmp_path / "clips" / "clips").mkdir(parents=True)
    assert unwrap_nested(tmp_path / "clips") == tmp_path / "clips" / "clips"
