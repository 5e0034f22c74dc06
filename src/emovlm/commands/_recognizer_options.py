"""Recognizer options shared by `predict` and `eval`, declared once and added to both commands."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer

from emovlm.errors import InputError
from emovlm.labels import LabelSpace
from emovlm.recognizers.base import RECOGNIZERS, Recognizer

_PANEL = "Recognizer options (each applies to the recognizers named)"
OPTIONS: dict[str, tuple[type, str]] = {
    "model": (
        str,
        "specialist: expression model (fer-xception | faceapi); vlm: model folder, id or served name",
    ),
    "faces": (
        str,
        "face detector: mtcnn | haar | none (media already face crops) [specialist, vlm]",
    ),
    "face_step": (int, "detect faces every N-th frame and track in between [specialist, vlm]"),
    "min_face": (
        float,
        "smallest face to find, as a share of the frame's shorter side (mtcnn) [specialist]",
    ),
    "frames": (
        str,
        "temporal sampler: all | uniform:K | fps:F | msce:KxG, optionally +shuffle:SEED",
    ),
    "aggregate": (str, "clip aggregation of per-frame probabilities: mean | peak [specialist]"),
    "device": (str, "torch device, e.g. cpu or cuda [specialist, vlm transformers]"),
    "backend": (str, "transformers | openai [vlm]"),
    "base_url": (str, "OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1 [vlm openai]"),
    "api_key_env": (str, "name of the environment variable holding the API key [vlm openai]"),
    "mode": (str, "generate (free text, parsed) | score (label likelihoods) [vlm]"),
    "prompt": (str, "prompt template name or a template file path [vlm]"),
    "concurrency": (int, "requests in flight at once [vlm openai]; batch size [vlm transformers]"),
    "max_new_tokens": (int, "longest answer in tokens [vlm]"),
    "temperature": (float, "sampling temperature; 0 is deterministic and cacheable [vlm]"),
    "image_size": (int, "longest image side sent to the model [vlm]"),
    "adapter": (str, "LoRA adapter folder [vlm transformers]"),
    "dtype": (str, "float32 | bfloat16 | float16 [vlm transformers]"),
    "person": (str, "how EMOTIC's person is shown: box (red box on the image) | crop [vlm]"),
    "max_labels": (int, "labels to ask for in 'pick up to k' prompts [vlm]"),
    "timeout": (float, "seconds before a server request is retried [vlm openai]"),
    "max_retries": (int, "retries of a failed server request, with backoff [vlm openai]"),
    "cache": (bool, "reuse cached temperature-0 answers (--no-cache to call the model) [vlm]"),
    "cache_dir": (str, "folder of the response cache [default: the emovlm cache folder] [vlm]"),
    "head": (
        str,
        "trained head file (from `emovlm finetune`) replacing the model's classifier [specialist]",
    ),
}
"""Option name → (type, help); the CLI flag is --name with dashes."""


def with_recognizer_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add every recognizer option to a command; it receives them as `recognizer_options`."""
    signature = inspect.signature(command)
    hints = typing.get_type_hints(command, include_extras=True)
    base = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != "recognizer_options"
    ]
    extra = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[kind | None, typer.Option(help=text, rich_help_panel=_PANEL)],
        )
        for name, (kind, text) in OPTIONS.items()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        chosen = {k: kwargs.pop(k) for k in OPTIONS if kwargs.get(k) is not None}
        for k in OPTIONS:
            kwargs.pop(k, None)
        return command(**kwargs, recognizer_options=chosen)

    parameters = base + extra
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


def build_recognizer(name: str, label_space: LabelSpace, options: Mapping[str, Any]) -> Recognizer:
    """Create a recognizer, refusing options that do not apply to it with a clear message."""
    factory = RECOGNIZERS.get(name)
    accepted = inspect.signature(factory).parameters
    wrong = [k for k in options if k not in accepted]
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise InputError(f"{flags} does not apply to --recognizer {name}; see `emovlm eval --help`")
    return factory(label_space, **options)
