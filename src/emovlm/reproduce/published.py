"""The papers' published numbers, shipped as data (recipes/published.yaml), each table with its source."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import yaml

from emovlm.errors import InputError

PUBLISHED_FILE = "published.yaml"


@cache
def _document() -> dict[str, Any]:
    text = (resources.files("emovlm") / "recipes" / PUBLISHED_FILE).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def published(key: str) -> dict[str, Any]:
    """One paper's published tables by key (e.g. 'paper-a')."""
    document = _document()
    if key not in document:
        raise InputError(
            f"no published numbers named {key!r} in {PUBLISHED_FILE}; use one of: "
            f"{', '.join(document)}"
        )
    return document[key]


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9.]", "", name.lower())


def same_model(published_name: str, model: str | None) -> bool:
    """Whether a served or local model name is the published model ('Qwen2.5-VL-7B-Instruct' is
    'Qwen2.5-VL'; 'Qwen3-VL-8B' is not 'Qwen2.5-VL')."""
    if not model:
        return False
    squashed = _squash(model.rsplit("/", 1)[-1])
    return squashed.startswith(_squash(published_name))
