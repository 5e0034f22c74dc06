"""DFEW adapter against small copies of the official on-disk layouts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from emovlm.data.base import open_dataset
from emovlm.data.dfew import DFEW
from emovlm.errors import InputError


def _write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _frames(folder: Path, count: int = 2) -> None:
    for index in range(1, count + 1):
        _write(folder / f"{folder.name}_{index:05d}.jpg")


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """The dataset release: EmoLabel_DataSplit/ split files and Clip/clip_224x224/ frame folders."""
    rows = "video_name,label\n1,1\n23,4\n105,0\n7,7\n"
    _write(tmp_path / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_2.csv", rows)
    _write(
        tmp_path / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_5.csv",
        "video_name,label\n2,2\n3,3\n",
    )
    for clip in ("00001", "00023", "00002", "00003"):
        _frames(tmp_path / "Clip" / "clip_224x224" / clip)
    return tmp_path


def test_reads_test_split_of_a_fold_in_file_order(release: Path) -> None:
    data = DFEW(release, split="test", fold=2)
    samples = list(data.samples())
    assert [s.id for s in samples] == ["00001", "00023", "00007"]
    assert [s.labels for s in samples] == [("happy",), ("angry",), ("fear",)]
    assert samples[0].media == release / "Clip" / "clip_224x224" / "00001"
    assert samples[0].meta["dfew_label"] == 1
    assert samples[0].box is None and samples[0].vad is None


def test_label_zero_is_skipped_and_counted(release: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="emovlm.data.base"):
        data = DFEW(release, fold=2)
    assert "00105" not in {s.id for s in data.samples()}
    assert data.skipped == {"label 0 (not single-label)": 1}
    assert "label 0" in caplog.text


def test_missing_media_is_kept_and_reported(
    release: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="emovlm.data.base"):
        data = DFEW(release, fold=2)
    assert [s.id for s in data.missing_media()] == ["00007"]
    assert len(data) == 3
    assert "1 of 3 samples" in caplog.text


def test_train_split_uses_the_train_file_of_the_fold(release: Path) -> None:
    data = DFEW(release, split="train", fold=5)
    assert [(s.id, s.labels) for s in data.samples()] == [
        ("00002", ("sad",)),
        ("00003", ("neutral",)),
    ]


def test_authors_github_layout(tmp_path: Path) -> None:
    _write(tmp_path / "label" / "single_testset_1.csv", "video_name,label\n16372,6\n")
    _frames(tmp_path / "data" / "16372")
    data = DFEW(tmp_path)
    sample = next(data.samples())
    assert (sample.id, sample.labels) == ("16372", ("disgust",))
    assert sample.media == tmp_path / "data" / "16372"
    assert data.missing_media() == []


def test_original_videos_in_part_folders(release: Path) -> None:
    _write(release / "Clip" / "original" / "part_1" / "1.mp4")
    _write(release / "Clip" / "original" / "part_2" / "23.mp4")
    data = DFEW(release, fold=2, media_dir="Clip/original")
    media = {s.id: s.media for s in data.samples()}
    assert media["00001"] == release / "Clip" / "original" / "part_1" / "1.mp4"
    assert media["00023"] == release / "Clip" / "original" / "part_2" / "23.mp4"


def test_missing_split_file_names_expected_path_and_option(release: Path) -> None:
    with pytest.raises(InputError) as error:
        DFEW(release, fold=3)
    message = str(error.value)
    assert "set_3.csv" in message and "labels_file=" in message


def test_labels_file_option_overrides_the_default(release: Path) -> None:
    custom = _write(release / "mine.csv", "video_name,label\n23,5\n")
    data = DFEW(release, fold=4, labels_file="mine.csv")
    assert [(s.id, s.labels) for s in data.samples()] == [("00023", ("surprise",))]
    assert data.config()["options"]["labels_file"] == str(custom)


@pytest.mark.parametrize(
    ("split", "fold", "needle"), [("val", 1, "train, test"), ("test", 6, "1-5")]
)
def test_bad_split_or_fold(release: Path, split: str, fold: int, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        DFEW(release, split=split, fold=fold)


def test_label_out_of_range_names_file_and_line(release: Path) -> None:
    _write(release / "bad.csv", "video_name,label\n1,1\n2,9\n")
    with pytest.raises(InputError, match=r"bad\.csv line 3"):
        DFEW(release, labels_file="bad.csv")


def test_split_file_without_expected_columns(release: Path) -> None:
    _write(release / "bad.csv", "clip,emotion\n1,1\n")
    with pytest.raises(InputError, match="video_name,label"):
        DFEW(release, labels_file="bad.csv")


def test_headerless_split_file_says_the_header_is_missing(release: Path) -> None:
    _write(release / "nohead.csv", "1,1\n23,4\n")
    with pytest.raises(
        InputError, match="nohead.csv: the header line is missing.*video_name,label"
    ):
        DFEW(release, fold=2, labels_file="nohead.csv")


def test_missing_media_folder_is_an_upfront_error(tmp_path: Path) -> None:
    _write(tmp_path / "label" / "single_testset_1.csv", "video_name,label\n1,1\n")
    with pytest.raises(InputError, match="media_dir="):
        DFEW(tmp_path)


def test_open_dataset_and_json_config(release: Path) -> None:
    data = open_dataset("dfew", release, split="test", fold=2)
    config = json.loads(json.dumps(data.config()))
    assert config["name"] == "dfew" and config["split"] == "test" and config["fold"] == 2
    assert config["root"] == str(release)
    assert config["options"]["media_dir"] == str(release / "Clip" / "clip_224x224")
