"""The VLM backend protocol, its request and answer types, and the registry of backends."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from emovlm.registry import Registry
from emovlm.types import Cost

Mode = Literal["generate", "score"]


@dataclass(frozen=True)
class VideoInput:
    """Frames of one clip (RGB uint8 arrays) in time order, with the rate they were sampled at."""

    frames: tuple[np.ndarray, ...]
    fps: float


Part = str | np.ndarray | VideoInput
"""One piece of a user turn: text, an RGB uint8 image, or a video."""


@dataclass(frozen=True)
class VLMRequest:
    """One question to a VLM: text, images and videos in order, and an optional system text."""

    parts: tuple[Part, ...]
    system: str = ""


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are decoded; part of every cache key."""

    max_new_tokens: int = 16
    temperature: float = 0.0

    @property
    def deterministic(self) -> bool:
        """True when the answer is a pure function of the request (greedy decoding)."""
        return self.temperature == 0.0


@dataclass(frozen=True)
class VLMAnswer:
    """A backend's answer to one request.

    `error` set means the request failed (the text is meaningless); `refusal` means the model
    declined. In score mode `label_logprobs` holds one log-probability per asked label.
    `cached` marks an answer read from the response cache (its cost is the original call's).
    """

    text: str = ""
    label_logprobs: Mapping[str, float] | None = None
    cost: Cost = field(default_factory=Cost)
    finish_reason: str = ""
    refusal: str = ""
    error: str = ""
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (used by the response cache)."""
        c = self.cost
        return {
            "text": self.text,
            "label_logprobs": dict(self.label_logprobs)
            if self.label_logprobs is not None
            else None,
            "cost": [c.calls, c.input_tokens, c.visual_tokens, c.output_tokens, c.seconds],
            "finish_reason": self.finish_reason,
            "refusal": self.refusal,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VLMAnswer:
        """Rebuild a cached answer from `to_json` output."""
        calls, inp, vis, out, secs = data["cost"]
        return cls(
            text=data["text"],
            label_logprobs=data["label_logprobs"],
            cost=Cost(int(calls), int(inp), int(vis), int(out), float(secs)),
            finish_reason=data["finish_reason"],
            refusal=data["refusal"],
            error=data["error"],
            cached=True,
        )


class VLM(Protocol):
    """A vision-language model, local or served.

    Per-request problems come back as answers with `error` set; only `preflight` raises, for
    problems that would make every request fail.
    """

    name: str

    def fingerprint(self) -> Mapping[str, Any]:
        """What identifies the model's answers (model path/name and content hashes), no secrets."""
        ...

    def preflight(self, mode: Mode) -> None:
        """Check cheaply that requests in `mode` can succeed; raise BackendError naming the fix."""
        ...

    def generate(
        self, requests: Sequence[VLMRequest], settings: GenerationSettings
    ) -> list[VLMAnswer]:
        """Free-text answers, one per request, in order."""
        ...

    def score(
        self, requests: Sequence[VLMRequest], labels: Sequence[str], settings: GenerationSettings
    ) -> list[VLMAnswer]:
        """Log-probability of each label as the answer, one answer per request, in order."""
        ...


VLM_BACKENDS: Registry[VLM] = Registry(
    "VLM backend",
    "emovlm.backends",
    (
        (
            "transformers",
            "transformers_vlm:TransformersVLM",
            "vlm",
            "local image-text-to-text model folder or id, run with transformers (+ optional LoRA)",
        ),
        (
            "openai",
            "openai_vlm:OpenAIVLM",
            "vlm",
            "OpenAI-compatible chat server: vLLM, SGLang, Ollama, llama.cpp, OpenAI, Gemini",
        ),
    ),
)
"""VLM backends by name; each factory is called with keyword settings (see docs/vlm.md)."""

_REQUIRED_MODULES: dict[str, tuple[str, ...]] = {
    "transformers": ("torch", "transformers"),
    "openai": ("aiohttp",),
}
_OPTIONAL_MODULES: dict[str, tuple[str, ...]] = {
    "transformers": ("peft", "torchvision", "accelerate"),
    "openai": (),
}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def describe_backends() -> list[dict[str, Any]]:
    """Each VLM backend: name, what it does, what it needs installed and what is missing."""
    rows = []
    for name in VLM_BACKENDS.names():
        help_text, extra = VLM_BACKENDS.describe(name)
        required = _REQUIRED_MODULES.get(name, ())
        optional = _OPTIONAL_MODULES.get(name, ())
        missing = [m for m in required if not _installed(m)]
        rows.append(
            {
                "name": name,
                "help": help_text,
                "requires": list(required),
                "optional": list(optional),
                "missing": missing,
                "missing_optional": [m for m in optional if not _installed(m)],
                "installed": not missing,
                "install": f"pip install 'emovlm[{extra}]'" if extra else "pip install emovlm",
            }
        )
    return rows
