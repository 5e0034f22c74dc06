"""FERV39k and MAFW adapters against small copies of their official layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from emovlm.data.ferv39k import FERV39k
from emovlm.data.mafw import MAFW
from emovlm.errors import InputError
from emovlm.labels import get_label_space


def _write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def ferv(tmp_path: Path) -> Path:
    """4_setups/All_scenes/{train,test}_All.csv and 2_ClipsforFaceCrop/<scene>/<emotion>/<clip>/."""
    _write(
        tmp_path / "4_setups" / "All_scenes" / "test_All.csv",
        "Action/Happy/0015 Happy\nArgue/Sad/0002 Sad\n",
    )
    _write(tmp_path / "4_setups" / "All_scenes" / "train_All.csv", "Action/Fear/0001 Fear\n")
    _write(tmp_path / "2_ClipsforFaceCrop" / "Action" / "Happy" / "0015" / "00.jpg")
    return tmp_path


def test_ferv39k_reads_official_split(ferv: Path) -> None:
    samples = list(FERV39k(ferv).samples())
    assert [(s.id, s.labels) for s in samples] == [
        ("Action/Happy/0015", ("happy",)),
        ("Argue/Sad/0002", ("sad",)),
    ]
    assert samples[0].media == ferv / "2_ClipsforFaceCrop" / "Action" / "Happy" / "0015"
    assert samples[0].meta["scene"] == "Action"


def test_ferv39k_keeps_clips_whose_folder_is_missing(ferv: Path) -> None:
    data = FERV39k(ferv)
    assert [s.id for s in data.missing_media()] == ["Argue/Sad/0002"]


def test_ferv39k_train_split_and_nested_archive_folder(tmp_path: Path) -> None:
    _write(tmp_path / "4_setups" / "All_scenes" / "train_All.csv", "Action/Fear/0001 Fear\n")
    nested = tmp_path / "2_ClipsforFaceCrop" / "2_ClipsforFaceCrop"
    _write(nested / "Action" / "Fear" / "0001" / "00.jpg")
    data = FERV39k(tmp_path, split="train")
    assert next(data.samples()).media == nested / "Action" / "Fear" / "0001"
    assert data.missing_media() == []


def test_ferv39k_header_line_is_ignored(ferv: Path) -> None:
    _write(ferv / "with_header.csv", "path label\nAction/Happy/0015 Happy\n")
    data = FERV39k(ferv, labels_file="with_header.csv")
    assert [s.id for s in data.samples()] == ["Action/Happy/0015"]


def test_ferv39k_bad_row_names_file_and_line(ferv: Path) -> None:
    _write(ferv / "bad.csv", "Action/Happy/0015 Happy\nAction/Happy/0016 Joyous\n")
    with pytest.raises(InputError, match=r"bad\.csv line 2.*Joyous"):
        FERV39k(ferv, labels_file="bad.csv")


def test_ferv39k_has_no_folds(ferv: Path) -> None:
    with pytest.raises(InputError, match="no folds"):
        FERV39k(ferv, fold=2)


def test_ferv39k_missing_split_file(tmp_path: Path) -> None:
    (tmp_path / "2_ClipsforFaceCrop").mkdir()
    with pytest.raises(InputError, match=r"test_All\.csv.*labels_file="):
        FERV39k(tmp_path)


@pytest.fixture
def mafw(tmp_path: Path) -> Path:
    """Train & Test Set/single/no_caption/set_N/{train,test}.txt and data/clips/*.mp4."""
    split_dir = tmp_path / "Train & Test Set" / "single" / "no_caption" / "set_3"
    _write(split_dir / "test.txt", "00025.mp4 anger\n00031.mp4 contempt\n\n")
    _write(split_dir / "train.txt", "00040.mp4 helplessness\n")
    _write(tmp_path / "data" / "clips" / "00025.mp4")
    _write(tmp_path / "data" / "clips" / "00031.mp4")
    return tmp_path


def test_mafw_reads_official_split(mafw: Path) -> None:
    samples = list(MAFW(mafw, fold=3).samples())
    assert [(s.id, s.labels) for s in samples] == [("00025", ("anger",)), ("00031", ("contempt",))]
    assert samples[1].media == mafw / "data" / "clips" / "00031.mp4"
    assert samples[1].meta["file"] == "00031.mp4"


def test_mafw_label_order_is_the_official_numbering() -> None:
    space = get_label_space("mafw")
    assert space.labels == (
        "anger",
        "disgust",
        "fear",
        "happiness",
        "neutral",
        "sadness",
        "surprise",
        "contempt",
        "anxiety",
        "helplessness",
        "disappointment",
    )


def test_mafw_train_split_with_frame_folders(mafw: Path) -> None:
    (mafw / "data" / "frames" / "00040").mkdir(parents=True)
    data = MAFW(mafw, split="train", fold=3, media_dir="data/frames")
    sample = next(data.samples())
    assert (sample.labels, sample.media) == (("helplessness",), mafw / "data" / "frames" / "00040")


def test_mafw_missing_clip_is_counted(mafw: Path) -> None:
    data = MAFW(mafw, split="train", fold=3)
    assert [s.id for s in data.missing_media()] == ["00040"]


def test_mafw_unknown_label_names_file_and_line(mafw: Path) -> None:
    _write(mafw / "bad.txt", "00025.mp4 anger\n00031.mp4 boredom\n")
    with pytest.raises(InputError, match=r"bad\.txt line 2.*boredom"):
        MAFW(mafw, labels_file="bad.txt")


def test_mafw_missing_split_file_names_the_path(mafw: Path) -> None:
    with pytest.raises(InputError, match=r"set_1/test\.txt"):
        MAFW(mafw, fold=1)
