"""Which backend each backend setting acts on (light: no torch, transformers or openai imports)."""

from __future__ import annotations

from typing import Literal

BackendName = Literal["transformers", "openai"]

DEFAULT_TEXT_LLM = "gemma3-270m"
"""Name of the offline fallback text LLM (base Gemma 3 270M, fetched from PyPI): smoke tests only."""

ACTS_ON: dict[str, BackendName] = {
    "base_url": "openai",
    "api_key_env": "openai",
    "timeout": "openai",
    "max_retries": "openai",
    "model_revision": "openai",
    "rpm": "openai",
    "tpm": "openai",
    "frames_as": "openai",
    "device": "transformers",
    "dtype": "transformers",
    "adapter": "transformers",
}
"""Setting → the one backend that reads it; with the other backend the setting does nothing."""

WHY_NOT: dict[BackendName, str] = {
    "openai": "the server loads and places the model",
    "transformers": "a local model makes no server requests",
}
"""Why settings of the other backend do nothing with this one, for refusal messages."""
