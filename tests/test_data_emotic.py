"""EMOTIC adapter: a real Annotations.mat built with scipy in the official nested struct layout,
and the per-split CSV export."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.io import savemat

from emovlm.data.emotic import EMOTIC
from emovlm.errors import InputError


def _structs(*items: dict[str, Any]) -> np.ndarray:
    """A 1xN MATLAB struct array."""
    array = np.zeros((1, len(items)), dtype=[(name, object) for name in items[0]])
    for index, item in enumerate(items):
        for name, value in item.items():
            array[0, index][name] = value
    return array


def _cell(*texts: str) -> np.ndarray:
    cell = np.empty((1, len(texts)), dtype=object)
    for index, text in enumerate(texts):
        cell[0, index] = text
    return cell


def _vad_fields(valence: float, arousal: float, dominance: float) -> dict[str, float]:
    return {"valence": valence, "arousal": arousal, "dominance": dominance}


def _vad(valence: float, arousal: float, dominance: float) -> np.ndarray:
    return _structs(_vad_fields(valence, arousal, dominance))


def _image(
    filename: str, folder: str, persons: np.ndarray, width: int = 640, height: int = 480
) -> dict[str, Any]:
    return {
        "filename": filename,
        "folder": folder,
        "image_size": _structs({"n_col": width, "n_row": height}),
        "original_database": _structs({"name": folder.split("/")[0], "info": ""}),
        "person": persons,
    }


def _train_person(box: list[float], categories: np.ndarray, vad: np.ndarray) -> dict[str, Any]:
    return {
        "body_bbox": np.array([box], dtype=float),
        "annotations_categories": _structs({"categories": categories}),
        "annotations_continuous": vad,
        "gender": "Male",
        "age": "Adult",
    }


def _test_person(
    box: list[float],
    annotators: list[np.ndarray],
    combined: np.ndarray,
    vads: list[dict[str, float]],
    combined_vad: np.ndarray,
) -> dict[str, Any]:
    return {
        "body_bbox": np.array([box], dtype=float),
        "annotations_categories": _structs(*({"categories": c} for c in annotators)),
        "combined_categories": combined,
        "annotations_continuous": _structs(*vads),
        "combined_continuous": combined_vad,
        "gender": "Female",
        "age": "Kid",
    }


@pytest.fixture
def emotic(tmp_path: Path) -> Path:
    """root/Annotations/Annotations.mat (train + test tables) and root/emotic/<folder>/<file>."""
    train = _structs(
        _image(
            "COCO_1.jpg",
            "mscoco/images",
            _structs(
                _train_person([10, 20, 110, 220], _cell("Engagement", "Happiness"), _vad(6, 5, 7)),
                _train_person([300, 40, 700, 470], _cell("Doubt/Confusion"), _vad(math.nan, 4, 5)),
            ),
        ),
        _image(
            "frame 9.jpg",
            "framesdb/images",
            _structs(
                _train_person([1, 2, 30, 40], _cell("Peace"), _vad(7, 2, 6)),
            ),
        ),
    )
    three_vads = [_vad_fields(4, 6, 5), _vad_fields(6, 6, 7), _vad_fields(5, 3, 6)]
    test = _structs(
        _image(
            "ade_1.jpg",
            "ade20k/images",
            _structs(
                _test_person(
                    [5, 5, 50, 90],
                    [_cell("Anger", "Annoyance"), _cell("Annoyance"), _cell("Fear")],
                    _cell("Anger", "Annoyance", "Fear"),
                    three_vads,
                    _vad(5, 5, 6),
                ),
                _test_person(
                    [60, 5, 90, 90], [_cell(), _cell(), _cell()], _cell(), three_vads, _vad(5, 5, 6)
                ),
            ),
        ),
    )
    annotations = tmp_path / "Annotations" / "Annotations.mat"
    annotations.parent.mkdir()
    savemat(annotations, {"train": train, "test": test})
    for image in ("mscoco/images/COCO_1.jpg", "ade20k/images/ade_1.jpg"):
        (tmp_path / "emotic" / image).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "emotic" / image).write_bytes(b"")
    return tmp_path


def test_one_sample_per_person_with_box_labels_and_vad(emotic: Path) -> None:
    samples = list(EMOTIC(emotic, split="train").samples())
    assert [s.id for s in samples] == [
        "mscoco/images/COCO_1.jpg#0",
        "mscoco/images/COCO_1.jpg#1",
        "framesdb/images/frame 9.jpg#0",
    ]
    first = samples[0]
    assert first.labels == ("engagement", "happiness")
    assert first.box == (10.0, 20.0, 110.0, 220.0)
    assert first.vad == (6.0, 5.0, 7.0)
    assert first.media == emotic / "emotic" / "mscoco" / "images" / "COCO_1.jpg"
    assert first.meta["gender"] == "Male" and first.meta["image_size"] == (640, 480)


def test_box_is_clipped_to_the_image_and_nan_vad_is_none(emotic: Path) -> None:
    second = list(EMOTIC(emotic, split="train").samples())[1]
    assert second.box == (300.0, 40.0, 640.0, 470.0)
    assert second.vad is None
    assert second.labels == ("doubt/confusion",)


def test_single_person_single_category_image(emotic: Path) -> None:
    data = EMOTIC(emotic, split="train")
    third = list(data.samples())[2]
    assert (third.labels, third.vad) == (("peace",), (7.0, 2.0, 6.0))
    assert [s.id for s in data.missing_media()] == ["framesdb/images/frame 9.jpg#0"]


@pytest.mark.parametrize(
    ("combine", "labels"),
    [
        ("official", ("anger", "annoyance", "fear")),
        ("union", ("anger", "annoyance", "fear")),
        ("majority", ("annoyance",)),
    ],
)
def test_annotators_are_combined(emotic: Path, combine: str, labels: tuple[str, ...]) -> None:
    sample = next(EMOTIC(emotic, split="test", combine=combine).samples())
    assert sample.labels == labels
    assert sample.meta["annotators"] == 3


def test_official_vad_is_the_combined_one(emotic: Path) -> None:
    sample = next(EMOTIC(emotic, split="test").samples())
    assert sample.vad == (5.0, 5.0, 6.0)


def test_person_without_categories_is_skipped_and_counted(emotic: Path) -> None:
    data = EMOTIC(emotic, split="test")
    assert [s.id for s in data.samples()] == ["ade20k/images/ade_1.jpg#0"]
    assert data.skipped == {"person without category annotations": 1}


def test_split_missing_from_the_mat_file(emotic: Path) -> None:
    with pytest.raises(InputError, match=r"no 'val' table.*train, test"):
        EMOTIC(emotic, split="val")


def test_not_a_mat_file(emotic: Path) -> None:
    (emotic / "broken.mat").write_text("not matlab", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.mat"):
        EMOTIC(emotic, annotations_file="broken.mat")


def test_unknown_combine_choice(emotic: Path) -> None:
    with pytest.raises(InputError, match="official, union, majority"):
        EMOTIC(emotic, combine="mean")


CSV_HEADER = (
    "Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age\n"
)


def _csv_root(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "emotic_pre" / "test.csv"
    path.parent.mkdir()
    path.write_text(CSV_HEADER + rows, encoding="utf-8")
    return tmp_path


def test_csv_export(tmp_path: Path) -> None:
    root = _csv_root(
        tmp_path,
        (
            '0,mscoco/images,COCO_1.jpg,"[640, 480]","[10, 20, 700, 220]",'
            "\"['Sympathy', 'Esteem']\",\"[6, 5, 7]\",Male,Adult\n"
            '1,mscoco/images,COCO_1.jpg,"[640, 480]","[1, 2, 3, 4]","[\'Pain\']","[nan, nan, nan]",'
            "Female,Teenager\n"
        ),
    )
    samples = list(EMOTIC(root).samples())
    assert [s.id for s in samples] == ["mscoco/images/COCO_1.jpg#0", "mscoco/images/COCO_1.jpg#1"]
    assert samples[0].labels == ("esteem", "sympathy")
    assert samples[0].box == (10.0, 20.0, 640.0, 220.0)
    assert samples[0].vad == (6.0, 5.0, 7.0)
    assert samples[1].vad is None and samples[1].meta["age"] == "Teenager"
    assert samples[0].media == root / "mscoco" / "images" / "COCO_1.jpg"


def test_csv_bad_cell_names_line(tmp_path: Path) -> None:
    root = _csv_root(tmp_path, '0,f,a.jpg,"[640, 480]","[10, 20]","[\'Peace\']","[1, 2, 3]",M,A\n')
    with pytest.raises(InputError, match=r"test\.csv line 2: BBox"):
        EMOTIC(root)


def test_csv_unknown_category(tmp_path: Path) -> None:
    root = _csv_root(
        tmp_path, '0,f,a.jpg,"[64, 48]","[1, 2, 3, 4]","[\'Hunger\']","[1, 2, 3]",M,A\n'
    )
    with pytest.raises(InputError, match="'Hunger'.*26"):
        EMOTIC(root)


def test_csv_cannot_recombine_annotators(tmp_path: Path) -> None:
    root = _csv_root(tmp_path, "")
    with pytest.raises(InputError, match="needs Annotations.mat"):
        EMOTIC(root, combine="union")
