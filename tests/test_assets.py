"""Assets: checksummed, cached, and a missing one names the command that fetches it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from emovlm.assets import ASSETS, BUNDLES, asset_path, fetch_command
from emovlm.errors import InputError, MissingAssetError, MissingDependencyError
from emovlm.registry import Registry


def test_offline_missing_asset_names_the_fetch_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOVLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EMOVLM_OFFLINE", "1")
    with pytest.raises(MissingAssetError, match="run: emovlm fetch mtcnn") as info:
        asset_path("mtcnn-onet")
    assert str(tmp_path / "cache") in str(info.value)


def test_a_corrupted_cached_file_is_not_trusted(
    asset: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = asset("feat-happy")
    monkeypatch.setenv("EMOVLM_CACHE", str(tmp_path))
    copy = tmp_path / "assets" / good.parent.name / good.name
    copy.parent.mkdir(parents=True)
    shutil.copy(good, copy)
    assert asset_path("feat-happy", fetch=False) == copy
    copy.write_bytes(copy.read_bytes()[:-10])
    with pytest.raises(MissingAssetError):
        asset_path("feat-happy", fetch=False)


def test_every_bundle_member_is_a_known_asset() -> None:
    assert {n for members in BUNDLES.values() for n in members} <= set(ASSETS)
    assert fetch_command(["mtcnn-pnet", "fer-xception"]) == "emovlm fetch fer-xception mtcnn"


def test_registry_names_choices_and_the_install_command() -> None:
    registry: Registry[object] = Registry("widget")
    registry.add("ok", "json:dumps")
    registry.add("absent", "package_that_is_not_installed_xyz:thing", needs="vlm")
    assert registry.get("ok").__name__ == "dumps"
    with pytest.raises(InputError, match="unknown widget 'nope'; choose one of: ok, absent"):
        registry.get("nope")
    with pytest.raises(MissingDependencyError, match=r"pip install 'emovlm\[vlm\]'"):
        registry.get("absent")


def test_registry_declared_as_a_table_under_a_package() -> None:
    registry: Registry[object] = Registry(
        "widget", "json", (("decoder", "decoder:JSONDecoder", "", "the JSON decoder"),)
    )
    assert registry.names() == ["decoder"]
    assert registry.get("decoder").__name__ == "JSONDecoder"
    assert registry.describe("decoder") == ("the JSON decoder", "")
