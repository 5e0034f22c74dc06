"""Recognizer settings: which backends the backend flags reach (idle flags are refused), and the
typed settings of the text LLM stage. Light on purpose (no torch, transformers or openai)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar

from emovlm.backends.settings import ACTS_ON, DEFAULT_TEXT_LLM, WHY_NOT
from emovlm.errors import InputError

DEFAULT_BACKEND = "transformers"
F = TypeVar("F", bound=Callable[..., Any])


def _main(options: Mapping[str, Any]) -> str:
    return options.get("backend") or DEFAULT_BACKEND


def _llm(options: Mapping[str, Any]) -> str:
    return options.get("llm_backend") or DEFAULT_BACKEND


def backend_groups(recognizer: str, options: Mapping[str, Any]) -> dict[str, list[str]]:
    """Flag prefix → the flags naming the backends those flags reach ("" reaches every backend)."""
    groups: dict[str, list[str]] = {
        "vlm": {"": ["backend"]},
        "contextual-vlm": {"": ["backend"]},
        "caption-llm": {"": ["backend", "llm_backend"], "llm_": ["llm_backend"]},
        "narracap-llm": {"": ["llm_backend"], "llm_": ["llm_backend"]},
    }.get(recognizer, {})
    if recognizer == "msce":
        llm_given = any(
            options.get(f"llm_{k}") is not None for k in ("backend", "model", "base_url")
        )
        uses_llm = options.get("stage2") == "text" and (llm_given or not options.get("model"))
        stage2 = ["llm_backend"] if uses_llm else ["backend"]
        describer = ["describer_backend"] if options.get("describer") == "vlm" else []
        groups = {"": stage2 + describer, "llm_": ["llm_backend"]}
        groups["describer_"] = describer
    return groups


def _backend_of(flag: str, options: Mapping[str, Any]) -> str:
    if flag == "describer_backend":
        return options.get("describer_backend") or _main(options)
    return _llm(options) if flag == "llm_backend" else _main(options)


def _device_used_elsewhere(recognizer: str, options: Mapping[str, Any]) -> bool:
    """Whether --device also places a local model beside the backends (faces, describer, CLIP)."""
    faces = options.get("faces") not in (None, "none")
    specialist = recognizer == "msce" and options.get("describer", "specialist") == "specialist"
    return faces or specialist or recognizer == "narracap-llm"


def refuse_idle_flags(recognizer: str, options: Mapping[str, Any]) -> None:
    """Raise InputError for a given flag that no backend of `recognizer` would read."""
    groups = backend_groups(recognizer, options)
    for key in options:
        prefix = next((p for p in groups if p and key.startswith(p)), "")
        setting = key[len(prefix) :]
        wanted = ACTS_ON.get(setting)
        if wanted is None or not groups.get(prefix):
            continue
        if setting == "device" and _device_used_elsewhere(recognizer, options):
            continue
        reached = {flag: _backend_of(flag, options) for flag in groups[prefix]}
        if wanted in reached.values():
            continue
        chosen = ", ".join(f"--{f.replace('_', '-')} {b}" for f, b in reached.items())
        other = next(iter(reached.values()), DEFAULT_BACKEND)
        raise InputError(
            f"--{key.replace('_', '-')} does nothing with {chosen or 'no model backend'}"
            f" ({WHY_NOT.get(other, '')}); it applies to --{prefix.replace('_', '-')}backend "
            f"{wanted} only: leave it out"
        )


@dataclass(frozen=True, kw_only=True)
class PickerSettings:
    """The text LLM stage (`LabelPicker`) of caption-llm, narracap-llm and msce's text stage2."""

    llm_backend: str = DEFAULT_BACKEND
    llm_model: str = DEFAULT_TEXT_LLM
    llm_base_url: str | None = None
    llm_api_key_env: str = "OPENAI_API_KEY"
    mode: Literal["generate", "score"] = "generate"
    prompt: str = "pick-labels"
    max_labels: int = 6
    match: Literal["word", "contains"] = "word"
    vad: bool = False
    max_new_tokens: int = 32
    temperature: float = 0.0
    concurrency: int = 8
    device: str = "cpu"
    dtype: str = "float32"
    cache: bool = True
    cache_dir: str | None = None
    timeout: float = 60.0
    max_retries: int = 4

    def __post_init__(self) -> None:
        for flag, value, choices in (
            ("--mode", self.mode, ("generate", "score")),
            ("--match", self.match, ("word", "contains")),
        ):
            if value not in choices:
                raise InputError(f"{flag} {value!r} is unknown; choose {' or '.join(choices)}")
        if self.max_labels < 1 or self.max_new_tokens < 1 or self.temperature < 0:
            raise InputError("--max-labels and --max-new-tokens must be ≥ 1, --temperature ≥ 0")

    @property
    def smoke_test(self) -> bool:
        """Whether the text LLM is the fallback base model, whose labels mean nothing."""
        return self.llm_backend == "transformers" and self.llm_model == DEFAULT_TEXT_LLM


def with_settings(*classes: type) -> Callable[[F], F]:
    """Show the fields of `classes` as keyword parameters of an `__init__` taking `**settings`.

    The flat keywords stay the Python API and what the CLI checks flags against, while the
    values are gathered into the settings objects (defaults written once, in the classes).
    """

    def decorate(init: F) -> F:
        signature = inspect.signature(init)
        params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        names = {p.name for p in params}
        for cls in classes:
            for f in fields(cls):
                if f.name not in names:
                    names.add(f.name)
                    params.append(
                        inspect.Parameter(
                            f.name,
                            inspect.Parameter.KEYWORD_ONLY,
                            default=f.default,
                            annotation=f.type,
                        )
                    )
        init.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        return init

    return decorate
