"""A run's configuration key is stable, changes with any setting, and config.yaml lists them all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from emovlm.errors import InputError
from emovlm.labels import LabelSpace, get_label_space
from emovlm.run.config import (
    CONFIG_FILE,
    config_key,
    find_config,
    label_space_of,
    record_config,
    report_dir,
    resolve_config,
)

DFEW = get_label_space("dfew")


def _config(**recognizer: object) -> dict:
    dataset = {
        "name": "dfew",
        "root": Path("/data/DFEW"),
        "split": "test",
        "fold": 1,
        "options": {},
    }
    return resolve_config(
        dataset, "vlm", {"model": "qwen", "frames": (8, "uniform"), **recognizer}, DFEW
    )


def test_key_ignores_mapping_order_and_is_the_same_in_a_new_process() -> None:
    forward = _config(temperature=0.0, max_tokens=16)
    backward = resolve_config(
        {"options": {}, "fold": 1, "split": "test", "root": "/data/DFEW", "name": "dfew"},
        "vlm",
        {"max_tokens": 16, "temperature": 0.0, "frames": [8, "uniform"], "model": "qwen"},
        DFEW,
    )
    assert config_key(forward) == config_key(backward)
    code = (
        "from pathlib import Path; from emovlm.labels import get_label_space; "
        "from emovlm.run.config import config_key, resolve_config; "
        "print(config_key(resolve_config({'name': 'dfew', 'root': Path('/data/DFEW'), "
        "'split': 'test', 'fold': 1, 'options': {}}, 'vlm', {'model': 'qwen', "
        "'frames': (8, 'uniform'), 'temperature': 0.0, 'max_tokens': 16}, "
        "get_label_space('dfew'))))"
    )
    other_process = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert other_process.stdout.strip() == config_key(forward)


def test_any_changed_setting_changes_the_key() -> None:
    base = config_key(_config())
    assert config_key(_config(temperature=0.7)) != base
    changed_fold = resolve_config(
        {"name": "dfew", "root": "/data/DFEW", "split": "test", "fold": 2, "options": {}},
        "vlm",
        {"model": "qwen", "frames": [8, "uniform"]},
        DFEW,
    )
    assert config_key(changed_fold) != base


def test_unstorable_recognizer_settings_are_refused_by_name() -> None:
    with pytest.raises(InputError, match=r"recognizer 'vlm'.*\.client has type object"):
        _config(client=object())


def test_config_yaml_lists_each_configuration_once_oldest_first(tmp_path: Path) -> None:
    first = record_config(tmp_path, _config())
    second = record_config(tmp_path, _config(temperature=0.7))
    again = record_config(tmp_path, _config())
    assert again == first
    document = yaml.safe_load((tmp_path / CONFIG_FILE).read_text(encoding="utf-8"))
    entries = document["configurations"]
    assert [e["key"] for e in entries] == [first["key"], second["key"]]
    assert entries[0]["dataset"]["root"] == "/data/DFEW"
    assert entries[0]["recognizer"] == {
        "name": "vlm",
        "config": {"model": "qwen", "frames": [8, "uniform"]},
    }
    assert entries[0]["label_set"]["name"] == "dfew" and "created" in entries[0]
    assert "emovlm_version" in entries[0]
    assert report_dir(tmp_path, first["key"]) == tmp_path
    assert report_dir(tmp_path, second["key"]) == tmp_path / "reports" / second["key"]


def test_find_config_by_prefix_and_its_errors(tmp_path: Path) -> None:
    first = record_config(tmp_path, _config())
    assert find_config(tmp_path, None) == first
    second = record_config(tmp_path, _config(temperature=0.7))
    assert find_config(tmp_path, second["key"][:6]) == second
    with pytest.raises(InputError, match="several configurations.*--key"):
        find_config(tmp_path, None)
    with pytest.raises(InputError, match="matches no configuration"):
        find_config(tmp_path, "zzzz")


def test_a_broken_config_yaml_is_named(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text("configurations: [unclosed", encoding="utf-8")
    with pytest.raises(InputError, match="config.yaml is not valid YAML"):
        find_config(tmp_path, None)
    (tmp_path / CONFIG_FILE).write_text("just: text\n", encoding="utf-8")
    with pytest.raises(InputError, match="no 'configurations' list"):
        find_config(tmp_path, None)


def test_label_space_comes_back_from_the_recorded_configuration(tmp_path: Path) -> None:
    assert label_space_of(record_config(tmp_path, _config())) is DFEW
    custom = LabelSpace("my-folder", ("calm", "tense"))
    dataset = {"name": "folder", "root": "/data/x"}
    entry = record_config(tmp_path, resolve_config(dataset, "vlm", {}, custom))
    assert label_space_of(entry) == custom
