"""Recognizer options shared by `predict` and `eval`, declared once and added to both commands."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer
from rich.markup import escape

from emovlm.errors import InputError
from emovlm.labels import LabelSpace
from emovlm.recognizers.base import RECOGNIZERS, Recognizer
from emovlm.recognizers.settings import refuse_idle_flags

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
    "mode": (
        str,
        "generate (free text, parsed) | score (label likelihoods) [vlm; caption-llm and "
        "narracap-llm: the text LLM]",
    ),
    "prompt": (
        str,
        "prompt template name or a template file path [vlm; caption-llm and narracap-llm: the "
        "label-picking prompt]",
    ),
    "concurrency": (
        int,
        "most requests in flight at once, lowered while the server answers 429/503 or times out "
        "[vlm openai]; batch size [vlm transformers]",
    ),
    "max_new_tokens": (int, "longest answer in tokens [vlm, caption-llm, narracap-llm]"),
    "temperature": (float, "sampling temperature; 0 is deterministic and cacheable [vlm]"),
    "image_size": (int, "longest image side sent to the model [vlm]"),
    "adapter": (str, "LoRA adapter folder [vlm transformers]"),
    "dtype": (str, "float32 | bfloat16 | float16 [vlm transformers]"),
    "person": (
        str,
        "how EMOTIC's person is shown: box (red box on the image) | crop | crop+full (both) "
        "[vlm, caption-llm]",
    ),
    "max_labels": (
        int,
        "labels to ask for in 'pick up to k' prompts, and answered in score mode for multi-label "
        "sets [vlm, caption-llm, narracap-llm]",
    ),
    "model_revision": (
        str,
        "revision of the served model (e.g. a weights hash or date), part of the cache key, so "
        "new weights behind the same served name never reuse old answers "
        "[vlm, caption-llm, msce; --backend openai]",
    ),
    "timeout": (float, "seconds before a server request is retried [vlm openai]"),
    "max_retries": (int, "retries of a failed server request, with backoff [vlm openai]"),
    "frames_as": (
        str,
        "a clip's frames as: images (in time order) | video (one MP4 at the sampled rate) | auto "
        "(video if the server takes it) [vlm openai]",
    ),
    "rpm": (float, "at most this many requests per minute (hosted APIs) [vlm openai]"),
    "tpm": (
        float,
        "at most this many estimated prompt tokens per minute (hosted APIs) [vlm openai]",
    ),
    "cache": (bool, "reuse cached temperature-0 answers (--no-cache to call the model) [vlm]"),
    "cache_dir": (str, "folder of the response cache [default: the emovlm cache folder] [vlm]"),
    "head": (
        str,
        "trained head file (from `emovlm finetune`) replacing the model's classifier [specialist]",
    ),
    "k": (int, "labels each baseline answers [majority, random, weighted-random]"),
    "draw_seed": (int, "seed of the per-sample random draws [random, weighted-random]"),
    "match": (
        str,
        "answer text → labels: word (prose, negation, cues, lists; docs/metrics.md) | contains "
        "(Paper B's script: case-sensitive label name anywhere) | contains-any-case "
        "[vlm, caption-llm, narracap-llm]",
    ),
    "vad": (
        bool,
        "also ask for valence, arousal and dominance 1-10 [vlm, caption-llm, narracap-llm]",
    ),
    "caption_prompt": (
        str,
        "caption template name or file: VLM question [caption-llm]; caption text [narracap-llm]",
    ),
    "caption_tokens": (int, "longest VLM caption in tokens [caption-llm]"),
    "llm_backend": (str, "text LLM backend: transformers | openai [caption-llm, narracap-llm]"),
    "llm_model": (
        str,
        "text LLM: gemma3-270m (offline default, from PyPI), a model folder, a .gguf file, or a "
        "served model name [caption-llm, narracap-llm]",
    ),
    "llm_base_url": (str, "OpenAI-compatible server of the text LLM [caption-llm, narracap-llm]"),
    "llm_api_key_env": (
        str,
        "environment variable holding the text LLM server's key [caption-llm, narracap-llm]",
    ),
    "clip_backend": (str, "CLIP backend: transformers | open_clip [narracap-llm]"),
    "clip_model": (
        str,
        "CLIP weights: a transformers CLIP folder; open_clip: ARCH:WEIGHTS_FILE or a folder with "
        "open_clip_config.json [narracap-llm]",
    ),
    "vocabulary": (
        str,
        "folder whose who.yaml, where.txt, action.txt, signals.txt replace the built-in ones "
        "[narracap-llm]",
    ),
    "signal_std": (
        float,
        "keep signals with probability above mean + this x std (paper: 9 of 889 cues) "
        "[narracap-llm]",
    ),
    "keyframes": (int, "sparse keyframes per clip [msce]"),
    "per_gap": (int, "in-between frames described per gap between keyframes [msce]"),
    "edges": (bool, "also describe the frames before the first and after the last keyframe [msce]"),
    "describer": (
        str,
        "stage 1: specialist (expression model's trajectory in words) | vlm (a VLM per gap) [msce]",
    ),
    "stage2": (str, "interleaved (keyframe images + sentences) | text (sentences only) [msce]"),
    "describer_backend": (str, "VLM describer backend [default: --backend] [msce]"),
    "describer_model": (
        str,
        "VLM describer model [default: --model]; specialist describer: expression model [msce]",
    ),
    "describer_base_url": (str, "VLM describer server [default: --base-url] [msce]"),
    "describer_prompt": (str, "VLM describer prompt name or file [default: msce-describe] [msce]"),
    "describer_max_new_tokens": (int, "longest describer sentence in tokens [msce]"),
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
            annotation=Annotated[
                kind | None, typer.Option(help=escape(text), rich_help_panel=_PANEL)
            ],
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
    """Create a recognizer, refusing options that do not apply to it or to its chosen backends."""
    factory = RECOGNIZERS.get(name)
    accepted = inspect.signature(factory).parameters
    wrong = [k for k in options if k not in accepted]
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise InputError(f"{flags} does not apply to --recognizer {name}; see `emovlm eval --help`")
    refuse_idle_flags(name, options)
    return factory(label_space, **options)
