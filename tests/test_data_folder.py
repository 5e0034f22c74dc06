"""The plain label-folder adapter: root/<label>/<file>."""

from __future__ import annotations

from pathlib import Path

import pytest

from emovlm.data.folder import LabelFolders
from emovlm.errors import InputError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_label_folders_with_synonyms_case_and_frame_folders(tmp_path: Path) -> None:
    _touch(tmp_path / "Happy" / "a.jpg")
    _touch(tmp_path / "anger" / "clip 1.mp4")
    _touch(tmp_path / "neutral" / "frames_7" / "0001.jpg")
    _touch(tmp_path / "neutral" / "notes.txt")
    _touch(tmp_path / "neutral" / ".DS_Store")
    data = LabelFolders(tmp_path)
    samples = list(data.samples())
    assert [(s.id, s.labels) for s in samples] == [
        ("Happy/a.jpg", ("happy",)),
        ("anger/clip 1.mp4", ("angry",)),
        ("neutral/frames_7", ("neutral",)),
    ]
    assert samples[2].media == tmp_path / "neutral" / "frames_7"
    assert data.skipped == {"not an image, video or frame folder": 1}
    assert data.config()["options"] == {"label_set": "fer2013"}


def test_non_ascii_and_spaces_in_names(tmp_path: Path) -> None:
    media = _touch(tmp_path / "surprise" / "été à Zürich 1.png")
    sample = next(LabelFolders(tmp_path).samples())
    assert sample.media == media and sample.id == "surprise/été à Zürich 1.png"


def test_unknown_label_folder_names_folder_and_valid_labels(tmp_path: Path) -> None:
    _touch(tmp_path / "contempt" / "x.jpg")
    with pytest.raises(InputError) as error:
        LabelFolders(tmp_path)
    message = str(error.value)
    assert "'contempt'" in message and "angry, disgust" in message and "label_set=" in message


def test_other_label_set(tmp_path: Path) -> None:
    _touch(tmp_path / "contempt" / "x.jpg")
    _touch(tmp_path / "Happy" / "y.jpg")
    labels = [s.labels for s in LabelFolders(tmp_path, label_set="mafw").samples()]
    assert labels == [("happiness",), ("contempt",)]


def test_split_folders(tmp_path: Path) -> None:
    _touch(tmp_path / "train" / "happy" / "x.jpg")
    _touch(tmp_path / "test" / "sad" / "y.jpg")
    assert [s.id for s in LabelFolders(tmp_path, split="test").samples()] == ["sad/y.jpg"]
    assert [s.id for s in LabelFolders(tmp_path, split="train").samples()] == ["happy/x.jpg"]
    with pytest.raises(InputError, match="no 'val'"):
        LabelFolders(tmp_path, split="val")


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "happy").mkdir()
    with pytest.raises(InputError, match="no images or videos"):
        LabelFolders(tmp_path)


def test_unknown_label_set(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown label set"):
        LabelFolders(tmp_path, label_set="affectnet")
