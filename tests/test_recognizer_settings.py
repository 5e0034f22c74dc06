"""Recognizer settings objects: the one source of the CLI options, the run config and the API."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
import yaml
from PIL import Image
from typer.testing import CliRunner

from emovlm import cli
from emovlm.errors import InputError
from emovlm.labels import get_label_space
from emovlm.recognizers.base import RECOGNIZERS
from emovlm.recognizers.settings import (
    RECOGNIZER_SETTINGS,
    RandomSettings,
    SpecialistSettings,
    VLMSettings,
    flag,
)
from emovlm.recognizers.vlm import VLMRecognizer
from emovlm.train.settings import FaceSettings, HeadSettings, LoraSettings
from emovlm.train.settings import VLMSettings as TrainVLMSettings
from openai_server import FakeOpenAIServer


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime=300) as srv:
        yield srv


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small images listed in clips.csv."""
    root = tmp_path_factory.mktemp("images")
    for name, colour in (("a", (250, 0, 0)), ("b", (0, 250, 0))):
        Image.fromarray(np.full((48, 64, 3), colour, np.uint8)).save(root / f"{name}.png")
    (root / "clips.csv").write_text("id,path,label\na,a.png,happy\nb,b.png,sad\n")
    return root


def _options(command: str) -> dict[str, Any]:
    """The options of a CLI command by parameter name (typer's own click classes)."""
    group: Any = typer.main.get_command(cli.app)
    params = group.commands[command].params
    return {p.name: p for p in params if p.param_type_name == "option"}


def _unescaped(text: str | None) -> str:
    return (text or "").replace("\\[", "[")


def test_every_recognizer_has_a_settings_class_and_its_fields_are_its_keywords() -> None:
    assert set(RECOGNIZER_SETTINGS) == set(RECOGNIZERS.names())
    for name, cls in RECOGNIZER_SETTINGS.items():
        parameters = list(inspect.signature(RECOGNIZERS.get(name)).parameters)
        assert parameters == ["label_space", "settings", *(f.name for f in fields(cls))], name


@pytest.mark.parametrize("command", ["eval", "predict", "sweep"])
def test_each_setting_is_an_option_with_the_help_of_its_field(command: str) -> None:
    options = _options(command)
    for name, cls in RECOGNIZER_SETTINGS.items():
        for f in fields(cls):
            option = options[f.name]
            assert flag(f.name) in option.opts
            assert _unescaped(option.help).startswith(f.metadata["help"]), (name, f.name)
            assert name in _unescaped(option.help).rsplit("[", 1)[1], (name, f.name)
            assert option.default is None  # only given flags override the settings' defaults


def test_eval_help_shows_every_setting_in_the_panel_of_its_group() -> None:
    result = CliRunner().invoke(cli.app, ["eval", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    for panel in ("Model", "Requests", "Images", "Question", "Text LLM", "Specialist", "msce"):
        assert f"Recognizer options · {panel} " in result.output
    for cls in set(RECOGNIZER_SETTINGS.values()):
        for f in fields(cls):
            assert flag(f.name) in result.output


def test_run_config_round_trips_into_the_settings_it_was_run_with(
    server: FakeOpenAIServer, images: Path, tmp_path: Path
) -> None:
    server.reset()
    run_dir = tmp_path / "run"
    given = {
        "--model": "tiny-vlm",
        "--frames": "uniform:2",
        "--prompt": "dfer",
        "--max-new-tokens": "20",
        "--match": "contains-any-case",
        "--image-size": "224",
        "--max-labels": "3",
        "--concurrency": "3",
        "--timeout": "30",
    }
    args = ["eval", "--dataset", "manifest", "--root", str(images)]
    args += ["--dataset-option", "manifest=clips.csv", "--label-set", "dfew", "--recognizer"]
    args += ["vlm", "--backend", "openai", "--base-url", server.url, "--no-progress"]
    args += [*(x for pair in given.items() for x in pair), "--run-dir", str(run_dir)]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    (entry,) = yaml.safe_load((run_dir / "config.yaml").read_text())["configurations"]
    restored = VLMSettings.from_mapping(entry["recognizer"]["config"]["settings"], "config.yaml")
    # the run key holds what determines answers; server address and pacing are left out
    assert restored == VLMSettings(
        backend="openai",
        model="tiny-vlm",
        frames="uniform:2",
        prompt="dfer",
        max_new_tokens=20,
        match="contains-any-case",
        image_size=224,
        max_labels=3,
    )


def test_a_baseline_run_config_round_trips_too(images: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["eval", "--dataset", "manifest", "--root", str(images), "--dataset-option"]
    args += ["manifest=clips.csv", "--label-set", "dfew", "--recognizer", "random", "--k", "2"]
    args += ["--draw-seed", "7", "--no-progress", "--run-dir", str(run_dir)]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    (entry,) = yaml.safe_load((run_dir / "config.yaml").read_text())["configurations"]
    recorded = entry["recognizer"]["config"]["settings"]
    assert RandomSettings.from_mapping(recorded) == RandomSettings(k=2, draw_seed=7)


def test_settings_from_a_mapping_refuse_an_unknown_key_naming_file_and_key() -> None:
    with pytest.raises(InputError, match=r"run\.yaml: unknown key 'frame' for VLMSettings"):
        VLMSettings.from_mapping({"model": "m", "frame": "all"}, "run.yaml")
    assert VLMSettings.from_mapping({"face-step": 3}).face_step == 3


def test_settings_check_closed_choices_and_bounds_naming_the_flag() -> None:
    with pytest.raises(InputError, match="--mode 'guess' is unknown; choose one of: generate"):
        VLMSettings(mode="guess")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="--face-step must be at least 1, got 0"):
        SpecialistSettings(face_step=0)
    with pytest.raises(InputError, match="--aggregate 'max' is unknown"):
        SpecialistSettings(aggregate="max")  # type: ignore[arg-type]


def test_a_settings_object_and_keywords_build_the_same_recognizer(
    server: FakeOpenAIServer,
) -> None:
    space = get_label_space("dfew")
    base = VLMSettings(backend="openai", base_url=server.url, model="m", frames="uniform:2")
    from_object = VLMRecognizer(space, base)
    from_keywords = VLMRecognizer(
        space, backend="openai", base_url=server.url, model="m", frames="uniform:2"
    )
    assert from_object.config() == from_keywords.config()
    assert from_object.spec == base
    overridden = VLMRecognizer(space, base, frames="uniform:3")
    assert overridden.spec.frames == "uniform:3" and overridden.config()["frames"] != "uniform:2"
    with pytest.raises(InputError, match="--frame is no setting of VLMSettings"):
        VLMRecognizer(space, base, frame="all")


def test_finetune_options_come_from_the_training_settings_with_each_targets_default() -> None:
    options = _options("finetune")
    for cls in (HeadSettings, FaceSettings, LoraSettings, TrainVLMSettings):
        for f in fields(cls):
            name = f.metadata.get("flag") or f.name
            assert _unescaped(options[name].help).startswith(f.metadata["help"]), name
    assert "(default: specialist 10, vlm 3)" in options["epochs"].help
    result = CliRunner().invoke(cli.app, ["finetune", "--help"], env={"COLUMNS": "400"})
    assert (
        result.exit_code == 0 and "--lora-rank" in result.output and "--head-kind" in result.output
    )
