"""The manifest adapter: CSV/TSV/JSONL lists of path, label(s) and box, with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emovlm.data.base import open_dataset
from emovlm.data.manifest import Manifest
from emovlm.errors import InputError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(path: Path, *rows: dict[str, object]) -> Path:
    return _write(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def test_csv_with_ids_boxes_non_ascii_and_spaces(tmp_path: Path) -> None:
    media = _write(tmp_path / "vidéos" / "clip 1.mp4", "")
    _write(
        tmp_path / "manifest.csv",
        "id,path,label,box,source\n"
        'c1,vidéos/clip 1.mp4,Happy,"10,20,110,220",web\n'
        ",images/b.jpg,anger,,lab\n",
    )
    data = Manifest(tmp_path, label_set="dfew")
    first, second = data.samples()
    assert (first.id, first.media, first.labels) == ("c1", media, ("happy",))
    assert first.box == (10.0, 20.0, 110.0, 220.0)
    assert first.meta == {"source": "web"}
    assert (second.id, second.labels, second.box) == ("images/b.jpg", ("angry",), None)
    assert [s.id for s in data.missing_media()] == ["images/b.jpg"]


def test_root_may_be_the_manifest_file(tmp_path: Path) -> None:
    manifest = _write(
        tmp_path / "list.tsv", "path\tlabel\tx1\ty1\tx2\ty2\na.jpg\tsad\t1\t2\t3\t4\n"
    )
    data = open_dataset("manifest", manifest, label_set="fer2013")
    sample = next(data.samples())
    assert (sample.media, sample.box) == (tmp_path / "a.jpg", (1.0, 2.0, 3.0, 4.0))
    assert data.config()["options"]["manifest"] == str(manifest)


def test_jsonl_multi_label_and_separated_labels(tmp_path: Path) -> None:
    _jsonl(
        tmp_path / "manifest.jsonl",
        {
            "id": 7,
            "path": "a.jpg",
            "labels": ["Peace", "engagement"],
            "box": [0, 0, 5, 5],
            "vad": [6, 5, 7],
        },
        {"path": "b.jpg", "labels": "anger|fear; pain"},
    )
    first, second = Manifest(tmp_path, label_set="emotic").samples()
    assert (first.id, first.labels, first.vad) == ("7", ("peace", "engagement"), (6.0, 5.0, 7.0))
    assert second.labels == ("anger", "fear", "pain")


def test_split_column_filters_rows(tmp_path: Path) -> None:
    _write(tmp_path / "manifest.csv", "path,label,split\na.jpg,happy,train\nb.jpg,sad,test\n")
    assert [s.id for s in Manifest(tmp_path, label_set="dfew").samples()] == ["b.jpg"]
    with pytest.raises(InputError, match=r"no rows for split 'val' \(its splits: test, train\)"):
        Manifest(tmp_path, split="val", label_set="dfew")


def test_label_set_is_required(tmp_path: Path) -> None:
    _write(tmp_path / "manifest.csv", "path,label\na.jpg,happy\n")
    with pytest.raises(InputError, match="label_set=NAME"):
        Manifest(tmp_path)


def test_missing_columns_name_file_and_fix(tmp_path: Path) -> None:
    _write(tmp_path / "manifest.csv", "file,emotion\na.jpg,happy\n")
    with pytest.raises(InputError, match=r"manifest\.csv line 1: missing column\(s\) path, label"):
        Manifest(tmp_path, label_set="dfew")


def test_unknown_label_names_row_and_choices(tmp_path: Path) -> None:
    _write(tmp_path / "manifest.csv", "path,label\na.jpg,happy\nb.jpg,smug\n")
    with pytest.raises(InputError, match=r"manifest\.csv line 3: label 'smug'.*label_set"):
        Manifest(tmp_path, label_set="dfew")


def test_several_labels_in_a_single_label_set(tmp_path: Path) -> None:
    _write(tmp_path / "manifest.csv", "path,labels\na.jpg,happy;sad\n")
    with pytest.raises(InputError, match="single-label"):
        Manifest(tmp_path, label_set="dfew")


@pytest.mark.parametrize("box", ['"1,2,3"', '"1,2,x,4"', '"5,5,1,1"'])
def test_malformed_box(tmp_path: Path, box: str) -> None:
    _write(tmp_path / "manifest.csv", f"path,label,box\na.jpg,happy,{box}\n")
    with pytest.raises(InputError, match=r"line 2: box"):
        Manifest(tmp_path, label_set="dfew")


def test_paths_outside_the_root_are_refused_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    outside = _write(tmp_path / "elsewhere" / "x.jpg", "")
    _write(root / "manifest.csv", "path,label\nok.jpg,happy\n../elsewhere/x.jpg,sad\n")
    with pytest.raises(InputError) as error:
        Manifest(root, label_set="dfew")
    assert "line 3" in str(error.value) and "allow_outside_root=True" in str(error.value)
    allowed = Manifest(root, label_set="dfew", allow_outside_root=True)
    assert list(allowed.samples())[1].media.resolve() == outside.resolve()


def test_absolute_paths_inside_the_root_are_fine(tmp_path: Path) -> None:
    media = _write(tmp_path / "sub" / "a.jpg", "")
    _jsonl(tmp_path / "manifest.jsonl", {"path": str(media), "label": "fear"})
    assert next(Manifest(tmp_path, label_set="dfew").samples()).media == media


def test_absolute_path_outside_the_root_is_refused(tmp_path: Path) -> None:
    _jsonl(tmp_path / "data" / "manifest.jsonl", {"path": str(tmp_path / "x.jpg"), "label": "sad"})
    with pytest.raises(InputError, match="outside the dataset root"):
        Manifest(tmp_path / "data", label_set="dfew")


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    _write(tmp_path / "manifest.csv", "id,path,label\nx,a.jpg,happy\nx,b.jpg,sad\n")
    with pytest.raises(InputError, match="'x' is listed twice"):
        Manifest(tmp_path, label_set="dfew")


def test_bad_json_line(tmp_path: Path) -> None:
    _write(tmp_path / "manifest.jsonl", '{"path": "a.jpg", "label": "sad"}\n{"path": \n')
    with pytest.raises(InputError, match=r"manifest\.jsonl line 2: not valid JSON"):
        Manifest(tmp_path, label_set="dfew")


def test_jsonl_row_without_path_or_label(tmp_path: Path) -> None:
    _jsonl(tmp_path / "manifest.jsonl", {"path": "a.jpg"})
    with pytest.raises(InputError, match="line 1: no label"):
        Manifest(tmp_path, label_set="dfew")
    _jsonl(tmp_path / "manifest.jsonl", {"label": "sad"})
    with pytest.raises(InputError, match="line 1: no path"):
        Manifest(tmp_path, label_set="dfew")


def test_row_with_too_many_fields(tmp_path: Path) -> None:
    _write(tmp_path / "manifest.csv", "path,label\na.jpg,happy,extra\n")
    with pytest.raises(InputError, match="line 2: more fields"):
        Manifest(tmp_path, label_set="dfew")


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_bytes("path,label\ncaf\xe9.jpg,happy\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        Manifest(tmp_path, label_set="dfew")


def test_no_manifest_found(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="manifest=PATH"):
        Manifest(tmp_path, label_set="dfew")
