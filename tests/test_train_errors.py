"""Bad training input fails with one clear error before any feature is extracted or model loaded."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from emovlm.backends.expression.heads import build_head, load_head
from emovlm.data.base import open_dataset
from emovlm.errors import InputError
from emovlm.labels import get_label_space
from emovlm.train.features import FrameFeatures
from emovlm.train.finetune_specialist import FaceSettings, finetune_specialist
from emovlm.train.finetune_vlm import VLMSettings, finetune_vlm
from emovlm.train.lora import LoraSettings
from emovlm.train.specialist import HeadSettings, train_head

DFEW = get_label_space("dfew")


def _manifest(folder: Path, asset: Callable[[str], Path], rows: list[tuple[str, str]]) -> Path:
    """Real photos copied under `folder` with a manifest of (asset, label) rows, all in split train."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [["id", "path", "label", "split"]]
    for k, (name, label) in enumerate(rows):
        target = folder / f"{k}-{asset(name).name}"
        shutil.copy(asset(name), target)
        lines.append([f"{k}", target.name, label, "train"])
    with (folder / "manifest.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(lines)
    return folder


def _features(n: int) -> list[FrameFeatures]:
    rng = np.random.default_rng(0)
    return [
        FrameFeatures(rng.normal(size=(2, 8)).astype(np.float32), np.arange(2.0)) for _ in range(n)
    ]


def test_a_class_without_samples_is_named_before_any_feature_is_extracted(
    tmp_path: Path, asset: Callable[[str], Path]
) -> None:
    root = _manifest(tmp_path / "data", asset, [("feat-happy", "happy"), ("feat-angry", "angry")])
    data = open_dataset("manifest", root, split="train", label_set="dfew")
    cache = tmp_path / "features"
    with pytest.raises(
        InputError,
        match=r"5 class\(es\) of dfew have no samples.*sad, neutral, surprise, disgust, fear.*--allow-missing-classes",
    ):
        finetune_specialist(
            data,
            None,
            tmp_path / "run",
            head=HeadSettings(),
            faces=FaceSettings(),
            feature_cache=cache,
        )
    assert not cache.exists() and not (tmp_path / "run").exists()


def test_a_class_without_samples_stops_lora_before_the_model_is_loaded(
    tmp_path: Path, asset: Callable[[str], Path]
) -> None:
    root = _manifest(tmp_path / "data", asset, [("feat-happy", "happy")])
    data = open_dataset("manifest", root, split="train", label_set="dfew")
    with pytest.raises(InputError, match="have no samples"):
        finetune_vlm(
            data, None, tmp_path / "run", vlm=VLMSettings(model=str(tmp_path)), lora=LoraSettings()
        )
    assert not (tmp_path / "run").exists()


def test_a_label_outside_the_label_space_is_refused(
    tmp_path: Path, asset: Callable[[str], Path]
) -> None:
    root = _manifest(
        tmp_path / "data", asset, [("feat-happy", "happy"), ("feat-angry", "joyful rage")]
    )
    with pytest.raises(InputError, match="label 'joyful rage' is not in label set dfew"):
        open_dataset("manifest", root, split="train", label_set="dfew")
    with pytest.raises(InputError, match="label 'joyful rage' is not in label set 'dfew'"):
        train_head(
            _features(2),
            [("happy",), ("joyful rage",)],
            DFEW,
            HeadSettings(),
            feature_settings={"model": "x"},
        )


def test_unknown_sampler_and_head_kind_are_refused_with_the_choices() -> None:
    with pytest.raises(
        InputError,
        match="unknown sampler 'balanced'; choose one of: instance, square-root, class-balanced, progressive",
    ):
        train_head(
            _features(1),
            [("happy",)],
            DFEW,
            HeadSettings(sampler="balanced"),
            feature_settings={"model": "x"},
        )
    with pytest.raises(InputError, match="unknown sampler 'oversample'"):
        LoraSettings(sampler="oversample").check()
    with pytest.raises(
        InputError, match="unknown head kind 'lstm'; choose one of: linear, temporal"
    ):
        HeadSettings(kind="lstm").check()
    with pytest.raises(InputError, match="--epochs"):
        HeadSettings(epochs=0).check()


def test_a_head_is_refused_for_another_label_set_or_model_and_a_foreign_file_is_named(
    tmp_path: Path,
) -> None:
    labels = [(label,) for label in DFEW.labels]
    trained = train_head(
        _features(7),
        labels,
        DFEW,
        HeadSettings(epochs=1),
        feature_settings={"model": "fer-xception"},
    )
    path = trained.head.save(tmp_path / "head.pt")
    head = load_head(path)
    with pytest.raises(InputError, match="trained for label set 'dfew'.*not 'mafw'"):
        head.check_fits(get_label_space("mafw"), "fer-xception")
    with pytest.raises(
        InputError, match="features of expression model 'fer-xception', not 'faceapi'"
    ):
        head.check_fits(DFEW, "faceapi")
    other = tmp_path / "weights.pt"
    torch.save(build_head("linear", 8, 7).state_dict(), other)
    with pytest.raises(InputError, match="is not an emovlm head file"):
        load_head(other)
    (tmp_path / "notes.pt").write_text("not a head")
    with pytest.raises(InputError, match="is not an emovlm head file"):
        load_head(tmp_path / "notes.pt")
    with pytest.raises(InputError, match="does not exist"):
        load_head(tmp_path / "missing.pt")
