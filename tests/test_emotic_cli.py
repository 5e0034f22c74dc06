"""`emovlm eval --dataset emotic` as a user runs it: baselines fitted on the train split of a real
Annotations.mat and of the CSV export, and caption → LLM against a real local server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.io import savemat

from openai_server import Behaviour, FakeOpenAIServer

# Train labels: engagement most frequent, then happiness, anticipation, pleasure, confidence, peace.
TRAIN = [
    ["Engagement", "Happiness", "Anticipation"],
    ["Engagement", "Happiness", "Pleasure"],
    ["Engagement", "Anticipation", "Confidence"],
    ["Engagement", "Happiness", "Peace"],
    ["Engagement", "Pleasure", "Confidence", "Anticipation"],
    ["Happiness", "Peace", "Pleasure", "Confidence"],
    ["Engagement", "Peace", "Fatigue"],
    ["Sadness"],
]
TEST = [
    ["Engagement", "Fear"],
    ["Happiness", "Anticipation", "Sadness"],
    ["Pleasure", "Confidence"],
    ["Peace", "Suffering", "Pain"],
    ["Engagement", "Doubt/Confusion"],
]
TOP6 = ["engagement", "happiness", "anticipation", "confidence", "peace", "pleasure"]


def structs(*items: dict[str, Any]) -> np.ndarray:
    """A 1xN MATLAB struct array."""
    array = np.zeros((1, len(items)), dtype=[(name, object) for name in items[0]])
    for index, item in enumerate(items):
        for name, value in item.items():
            array[0, index][name] = value
    return array


def cell(*texts: str) -> np.ndarray:
    """A 1xN MATLAB cell array of strings."""
    array = np.empty((1, len(texts)), dtype=object)
    array[0, :] = list(texts)
    return array


def mat_split(rows: list[list[str]], split: str) -> np.ndarray:
    """One image per row with one annotated person, in Annotations.mat's nested struct layout."""
    images = []
    for i, categories in enumerate(rows):
        person = {
            "body_bbox": np.array([[10.0, 20.0, 110.0, 220.0]]),
            "annotations_categories": structs({"categories": cell(*categories)}),
            "annotations_continuous": structs({"valence": 5, "arousal": 5, "dominance": 5}),
            "gender": "Female",
            "age": "Adult",
        }
        images.append(
            {
                "filename": f"{split}_{i}.jpg",
                "folder": "mscoco/images",
                "image_size": structs({"n_col": 640, "n_row": 480}),
                "person": structs(person),
            }
        )
    return structs(*images)


def emovlm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess."""
    cmd = [sys.executable, "-m", "emovlm", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def evaluate(root: Path, run: Path, *options: str | Path) -> dict[str, Any]:
    result = emovlm(
        "eval", "--dataset", "emotic", "--root", root, "--run-dir", run, "--no-progress",
        "--bootstrap", "200", *options,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def mat_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("emotic-mat")
    (root / "Annotations").mkdir()
    savemat(
        root / "Annotations" / "Annotations.mat",
        {"train": mat_split(TRAIN, "train"), "test": mat_split(TEST, "test")},
    )
    return root


def test_majority_6_from_annotations_mat_has_macro_recall_6_of_26(
    mat_root: Path, tmp_path: Path
) -> None:
    metrics = evaluate(mat_root, tmp_path / "run", "--recognizer", "majority", "--k", "6")
    assert metrics["macro_recall"] == pytest.approx(6 / 26)
    assert metrics["n"] == len(TEST) and metrics["multi_label"] is True
    predicted = {label for label, row in metrics["per_class"].items() if row["recall"] > 0}
    assert predicted == set(TOP6)
    config = (tmp_path / "run" / "config.yaml").read_text(encoding="utf-8")
    assert "fit_counts" in config and "engagement: 6" in config


def test_fit_split_chooses_where_frequencies_come_from(mat_root: Path, tmp_path: Path) -> None:
    # fitted on the test split itself, majority-1 is the most frequent test label
    metrics = evaluate(
        mat_root, tmp_path / "run", "--recognizer", "majority", "--k", "1", "--fit-split", "test"
    )
    assert metrics["per_class"]["engagement"]["recall"] == 1.0
    assert metrics["macro_recall"] == pytest.approx(1 / 26)


def test_random_baselines_from_the_csv_export(mat_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "csv"
    (root / "emotic_pre").mkdir(parents=True)
    header = (
        "Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age\n"
    )
    for split, rows in (("train", TRAIN), ("test", TEST)):
        lines = [header] + [
            f'{i},mscoco/images,{split}_{i}.jpg,"[640, 480]","[10, 20, 110, 220]",'
            f'"{cats}","[5, 5, 5]",Male,Adult\n'
            for i, cats in enumerate(rows)
        ]
        (root / "emotic_pre" / f"{split}.csv").write_text("".join(lines), encoding="utf-8")
    first = evaluate(root, tmp_path / "a", "--recognizer", "random", "--k", "3", "--draw-seed", "7")
    again = evaluate(root, tmp_path / "b", "--recognizer", "random", "--k", "3", "--draw-seed", "7")
    assert first["per_class"] == again["per_class"]
    weighted = evaluate(root, tmp_path / "c", "--recognizer", "weighted-random", "--k", "3")
    never_in_train = ("fear", "pain", "suffering", "doubt/confusion")
    assert all(weighted["per_class"][label]["recall"] == 0 for label in never_in_train)


def test_caption_llm_on_emotic_through_the_cli(
    tmp_path: Path, asset: Callable[[str], Path]
) -> None:
    root = tmp_path / "emotic"
    (root / "emotic_pre").mkdir(parents=True)
    (root / "mscoco" / "images").mkdir(parents=True)
    shutil.copy(asset("astronaut"), root / "mscoco" / "images" / "astronaut.png")
    (root / "emotic_pre" / "test.csv").write_text(
        "Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age\n"
        '0,mscoco/images,astronaut.png,"[512, 512]","[160, 40, 360, 240]",'
        "\"['Happiness', 'Confidence']\",\"[8, 6, 7]\",Male,Adult\n",
        encoding="utf-8",
    )

    def answer(images: list[np.ndarray], text: str) -> str:
        if images:
            return "An astronaut smiles proudly in his spacesuit."
        return "happiness, confidence\nvalence: 8, arousal: 5, dominance: 7"

    behaviour = Behaviour(models=("tiny-vlm", "text-llm"), answer=answer)
    with FakeOpenAIServer(behaviour, lifetime=120) as server:
        metrics = evaluate(
            root, tmp_path / "run", "--recognizer", "caption-llm", "--backend", "openai",
            "--model", "tiny-vlm", "--base-url", server.url, "--llm-backend", "openai",
            "--llm-model", "text-llm", "--llm-base-url", server.url, "--vad",
            "--cache-dir", tmp_path / "cache", "--max-new-tokens", "48",
        )  # fmt: skip
    assert metrics["n"] == 1 and metrics["subset_accuracy"] == 1.0
    assert metrics["macro_precision"] == pytest.approx(2 / 26)
