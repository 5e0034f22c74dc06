"""Recognizer settings: one frozen, typed settings class per recognizer, composed of small groups.

The classes are the one place a recognizer's settings are written: their defaults, their help
text (field metadata) and their checks. The CLI options, the run config and the Python API all
come from them. Light on purpose (no torch, transformers or openai), so `--help` can read them.
Also here: which backends the backend flags reach (`refuse_idle_flags`).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, TypeVar

from emovlm.answers import MatchMode
from emovlm.backends.settings import ACTS_ON, DEFAULT_TEXT_LLM, WHY_NOT
from emovlm.errors import InputError

DEFAULT_BACKEND = "transformers"
T = TypeVar("T", bound=type)
S = TypeVar("S", bound="Settings")


def option(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    record: bool = True,
    flag: str | None = None,
) -> Any:
    """A settings field: its default, its help text (written once), a lower bound, whether it
    determines answers (`record`: kept in the run config and its key), and its flag's name where
    that is not the field's (`--lora-rank` for `rank`)."""
    metadata = {"help": help, "minimum": minimum, "record": record, "flag": flag}
    return field(default=default, metadata=metadata)


def override(group: type, name: str, default: Any) -> Any:
    """`group`'s field `name` with another default (same help, bound and record flag)."""
    return field(default=default, metadata=group.__dataclass_fields__[name].metadata)


def flag(name: str) -> str:
    """The CLI flag of a settings field."""
    return "--" + name.replace("_", "-")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def choices(cls: type, name: str) -> tuple[Any, ...]:
    """The closed choices of a field typed as a `Literal` (also inside `X | None`); () if open."""
    hint = _hints(cls)[name]
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    literal = [a for a in typing.get_args(hint) if typing.get_origin(a) is Literal]
    return typing.get_args(literal[0]) if literal else ()


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Base of every settings class: closed choices and lower bounds checked on creation."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value, name = getattr(self, f.name), f.metadata.get("flag") or f.name
            allowed = choices(type(self), f.name)
            if allowed and value is not None and value not in allowed:
                raise InputError(
                    f"{flag(name)} {value!r} is unknown; choose one of: {', '.join(allowed)}"
                )
            low = f.metadata.get("minimum")
            if low is not None and value is not None and value < low:
                raise InputError(f"{flag(name)} must be at least {low:g}, got {value}")

    @classmethod
    def of(cls: type[S], settings: S | None = None, options: Mapping[str, Any] | None = None) -> S:
        """`settings` (default: the class defaults) with the keyword `options` put over it."""
        base = settings if settings is not None else cls()
        if not isinstance(base, cls):
            raise InputError(f"settings must be {cls.__name__}, not {type(base).__name__}")
        known = {f.name for f in fields(cls)}
        wrong = [flag(k) for k in options or {} if k not in known]
        if wrong:
            raise InputError(f"{', '.join(wrong)} is no setting of {cls.__name__}")
        return replace(base, **options) if options else base

    @classmethod
    def from_mapping(cls: type[S], data: Mapping[str, Any], where: str = "settings") -> S:
        """Settings from plain data (a YAML mapping; keys with dashes or underscores).

        Unknown keys are refused, naming `where` (e.g. the file) and the key.
        """
        known = {f.name for f in fields(cls)}
        values = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(
                f"{where}: unknown key {unknown[0]!r} for {cls.__name__}; known keys: "
                f"{', '.join(sorted(known))}"
            )
        return cls(**values)

    def recorded(self) -> dict[str, Any]:
        """The fields that determine answers, as plain data (the run config's `settings`)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("record")}

    def values_of(self, *groups: type[Settings]) -> dict[str, Any]:
        """The values of the fields that `groups` declare, by name (keywords for a backend)."""
        return {f.name: getattr(self, f.name) for group in groups for f in fields(group)}

    def pick(self, target: type[S], **values: Any) -> S:
        """A `target` settings object with every field it shares with this one, then `values`."""
        names = {f.name for f in fields(target)}
        shared = {f.name: getattr(self, f.name) for f in fields(self) if f.name in names}
        return target(**{**shared, **values})


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


# ---- groups: each setting is written once, in one of these --------------------------------------


@dataclass(frozen=True, kw_only=True)
class ModelSettings(Settings):
    """Model: which model answers and where it is."""

    backend: str = option(DEFAULT_BACKEND, "transformers (local) | openai (a server)")
    model: str | None = option(
        None,
        "specialist: expression model (fer-xception | faceapi); VLM recognizers: model folder, "
        "id or served name; msce --describer specialist: see --describer-model",
    )
    base_url: str | None = option(
        None, "OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1 (openai)", record=False
    )
    api_key_env: str = option(
        "OPENAI_API_KEY",
        "name of the environment variable holding the API key (openai)",
        record=False,
    )
    model_revision: str | None = option(
        None,
        "revision of the served model (e.g. a weights hash or date), part of the cache key, so "
        "new weights behind the same served name never reuse old answers (openai)",
    )
    adapter: str | None = option(None, "LoRA adapter folder (transformers)")


@dataclass(frozen=True, kw_only=True)
class LocalSettings(Settings):
    """Local model: where a local model runs."""

    device: str = option("cpu", "torch device, e.g. cpu or cuda", record=False)
    dtype: str = option("float32", "float32 | bfloat16 | float16 (transformers)")


@dataclass(frozen=True, kw_only=True)
class RequestSettings(Settings):
    """Requests: how many at once, how long to wait, how often to retry."""

    concurrency: int = option(
        8,
        "most requests in flight at once, lowered while the server answers 429/503 or times out "
        "(openai); batch size (transformers)",
        minimum=1,
        record=False,
    )
    timeout: float = option(
        60.0, "seconds before a server request is retried (openai)", record=False
    )
    max_retries: int = option(
        4, "retries of a failed server request, with backoff (openai)", minimum=0, record=False
    )


@dataclass(frozen=True, kw_only=True)
class ServedSettings(Settings):
    """Served VLM: how clips travel and how fast requests may go (openai)."""

    frames_as: Literal["images", "video", "auto"] = option(
        "images",
        "a clip's frames as: images (in time order) | video (one MP4 at the sampled rate) | auto "
        "(video if the server takes it) (openai)",
    )
    rpm: float | None = option(
        None, "at most this many requests per minute (hosted APIs; openai)", record=False
    )
    tpm: float | None = option(
        None,
        "at most this many estimated prompt tokens per minute (hosted APIs; openai)",
        record=False,
    )


@dataclass(frozen=True, kw_only=True)
class CacheSettings(Settings):
    """Cache: reuse of deterministic answers."""

    cache: bool = option(
        True, "reuse cached temperature-0 answers (--no-cache to call the model)", record=False
    )
    cache_dir: str | None = option(
        None, "folder of the response cache [default: the emovlm cache folder]", record=False
    )


@dataclass(frozen=True, kw_only=True)
class ImageSettings(Settings):
    """Images: faces found and the size images are sent at."""

    faces: str = option("none", "face detector: mtcnn | haar | none (media already face crops)")
    face_step: int = option(5, "detect faces every N-th frame and track in between", minimum=1)
    image_size: int = option(448, "longest image side sent to the model", minimum=28)


@dataclass(frozen=True, kw_only=True)
class ShowSettings(Settings):
    """Clip and person: which frames are shown and how EMOTIC's person is shown."""

    frames: str = option(
        "uniform:8",
        "temporal sampler: all | uniform:K | fps:F | msce:KxG, optionally +shuffle:SEED",
    )
    person: Literal["box", "crop", "crop+full"] = option(
        "box",
        "how EMOTIC's person is shown: box (red box on the image) | crop | crop+full (both)",
    )


@dataclass(frozen=True, kw_only=True)
class AskSettings(Settings):
    """Question: the prompt and how the model answers it."""

    mode: Literal["generate", "score"] = option(
        "generate", "generate (free text, parsed) | score (label likelihoods)"
    )
    prompt: str | None = option(
        None, "prompt template name or a template file path (two-stage: the label-picking prompt)"
    )
    max_new_tokens: int = option(16, "longest answer in tokens", minimum=1)
    temperature: float = option(
        0.0, "sampling temperature; 0 is deterministic and cacheable", minimum=0
    )


@dataclass(frozen=True, kw_only=True)
class ReadSettings(Settings):
    """Reading answers: how answer text becomes labels."""

    max_labels: int = option(
        6,
        "k of 'pick up to k labels' prompts; labels answered in score mode (multi-label)",
        minimum=1,
    )
    match: MatchMode = option(
        "word",
        "answer text → labels: word (prose, negation, cues, lists; docs/metrics.md) | contains "
        "(Paper B's script: case-sensitive label name anywhere) | contains-any-case",
    )
    vad: bool = option(False, "also ask for valence, arousal and dominance 1-10")


@dataclass(frozen=True, kw_only=True)
class LLMSettings(Settings):
    """Text LLM: the model that picks labels from text."""

    llm_backend: str = option(DEFAULT_BACKEND, "text LLM backend: transformers | openai")
    llm_model: str = option(
        DEFAULT_TEXT_LLM,
        "text LLM: a model folder, a .gguf file, or a served model name; the default, "
        f"{DEFAULT_TEXT_LLM} (a base model from PyPI), is for smoke tests only",
    )
    llm_base_url: str | None = option(
        None, "OpenAI-compatible server of the text LLM", record=False
    )
    llm_api_key_env: str = option(
        "OPENAI_API_KEY", "environment variable holding the text LLM server's key", record=False
    )


# ---- one class per recognizer ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SpecialistSettings(Settings):
    """Specialist: the offline expression model over faces."""

    model: str | None = override(ModelSettings, "model", None)
    faces: str = override(ImageSettings, "faces", "mtcnn")
    face_step: int = override(ImageSettings, "face_step", 10)
    min_face: float = option(
        0.1, "smallest face to find, as a share of the frame's shorter side (mtcnn)"
    )
    frames: str = override(ShowSettings, "frames", "all")
    aggregate: Literal["mean", "peak"] = option(
        "mean", "clip aggregation of per-frame probabilities: mean | peak"
    )
    multi_label_threshold: float = option(
        0.2, "multi-label sets: labels whose clip probability is at least this are answered"
    )
    device: str = override(LocalSettings, "device", "cpu")
    head: str | None = option(
        None, "trained head file (from `emovlm finetune`) replacing the model's classifier"
    )
    all_faces: bool = option(
        False,
        "per-frame rows for every tracked face, not only the main one (the clip label still "
        "comes from the main face)",
    )


@dataclass(frozen=True, kw_only=True)
class AnsweringVLMSettings(
    ModelSettings,
    LocalSettings,
    RequestSettings,
    ServedSettings,
    CacheSettings,
    ImageSettings,
    AskSettings,
):
    """A VLM asked a question: the part the VLM recognizer and msce's stage 2 share."""


@dataclass(frozen=True, kw_only=True)
class VLMSettings(AnsweringVLMSettings, ShowSettings, ReadSettings):
    """The direct VLM recognizer (vlm, contextual-vlm)."""


@dataclass(frozen=True, kw_only=True)
class PickerSettings(
    LLMSettings, AskSettings, ReadSettings, RequestSettings, LocalSettings, CacheSettings
):
    """The text LLM stage (`LabelPicker`) of caption-llm, narracap-llm and msce's text stage2."""

    prompt: str | None = override(AskSettings, "prompt", "pick-labels")
    max_new_tokens: int = override(AskSettings, "max_new_tokens", 32)

    @property
    def smoke_test(self) -> bool:
        """Whether the text LLM is the fallback base model, whose labels mean nothing."""
        return self.llm_backend == "transformers" and self.llm_model == DEFAULT_TEXT_LLM


@dataclass(frozen=True, kw_only=True)
class CaptionLLMSettings(PickerSettings, ModelSettings, ShowSettings):
    """caption-llm: a VLM captions (model, frames, person), a text LLM picks the labels."""

    image_size: int = override(ImageSettings, "image_size", 448)
    caption_prompt: str = option(
        "caption",
        "caption template name or file: the VLM's question (caption-llm), the caption text "
        "(narracap-llm)",
    )
    caption_tokens: int = option(96, "longest VLM caption in tokens", minimum=1)


@dataclass(frozen=True, kw_only=True)
class NarraCapSettings(PickerSettings):
    """narracap-llm: zero-shot CLIP over fixed vocabularies captions, a text LLM picks the labels."""

    clip_backend: str = option("transformers", "CLIP backend: transformers | open_clip")
    clip_model: str | None = option(
        None,
        "CLIP weights: a transformers CLIP folder; open_clip: ARCH:WEIGHTS_FILE or a folder with "
        "open_clip_config.json",
    )
    vocabulary: str | None = option(
        None,
        "folder whose who.yaml, where.txt, action.txt, signals.txt replace the built-in ones",
    )
    signal_std: float = option(
        3.0,
        "keep signals with probability above mean + this x std (paper: 9 of 889 cues)",
        minimum=0,
    )
    caption_prompt: str = override(CaptionLLMSettings, "caption_prompt", "narracap")


@dataclass(frozen=True, kw_only=True)
class MSCESettings(AnsweringVLMSettings):
    """msce: keyframes and in-between motion described in words, classified by a VLM or text LLM.

    The `llm_*` fields default to None: given, they send --stage2 text to a text LLM.
    """

    keyframes: int = option(8, "sparse keyframes per clip", minimum=1)
    per_gap: int = option(4, "in-between frames described per gap between keyframes", minimum=0)
    edges: bool = option(
        False, "also describe the frames before the first and after the last keyframe"
    )
    describer: Literal["specialist", "vlm"] = option(
        "specialist",
        "stage 1: specialist (expression model's trajectory in words) | vlm (a VLM per gap)",
    )
    stage2: Literal["interleaved", "text"] = option(
        "interleaved", "interleaved (keyframe images + sentences) | text (sentences only)"
    )
    describer_backend: str | None = option(None, "VLM describer backend [default: --backend]")
    describer_model: str | None = option(
        None, "VLM describer model [default: --model]; specialist describer: expression model"
    )
    describer_base_url: str | None = option(
        None, "VLM describer server [default: --base-url]", record=False
    )
    describer_prompt: str | None = option(
        None, "VLM describer prompt name or file [default: msce-describe]"
    )
    describer_max_new_tokens: int = option(48, "longest describer sentence in tokens", minimum=1)
    llm_backend: str | None = override(LLMSettings, "llm_backend", None)
    llm_model: str | None = override(LLMSettings, "llm_model", None)
    llm_base_url: str | None = override(LLMSettings, "llm_base_url", None)
    llm_api_key_env: str = override(LLMSettings, "llm_api_key_env", "OPENAI_API_KEY")
    # the llm_* fields are written in LLMSettings; msce takes them without its other fields


@dataclass(frozen=True, kw_only=True)
class BaselineSettings(Settings):
    """Baselines: how many labels they answer."""

    k: int = option(6, "labels each baseline answers", minimum=1)


@dataclass(frozen=True, kw_only=True)
class RandomSettings(BaselineSettings):
    """Random baselines: k and the seed of their draws."""

    draw_seed: int = option(0, "seed of the per-sample random draws")


@dataclass(frozen=True, kw_only=True)
class JudgeSettings(RequestSettings, LocalSettings, CacheSettings):
    """The answer judge of `--extract rules+judge|judge`: a text LLM that re-reads answers."""

    extract: Literal["judge", "rules+judge"] = option(
        "rules+judge",
        "judge: the text LLM reads every answer | rules+judge: only those the rules leave unsettled",
        flag="extract",
    )
    backend: str = override(ModelSettings, "backend", DEFAULT_BACKEND)
    model: str = override(LLMSettings, "llm_model", DEFAULT_TEXT_LLM)
    base_url: str | None = override(ModelSettings, "base_url", None)
    api_key_env: str = override(ModelSettings, "api_key_env", "OPENAI_API_KEY")
    max_new_tokens: int = override(AskSettings, "max_new_tokens", 24)


RECOGNIZER_SETTINGS: dict[str, type[Settings]] = {
    "specialist": SpecialistSettings,
    "vlm": VLMSettings,
    "contextual-vlm": VLMSettings,
    "msce": MSCESettings,
    "caption-llm": CaptionLLMSettings,
    "narracap-llm": NarraCapSettings,
    "majority": BaselineSettings,
    "random": RandomSettings,
    "weighted-random": RandomSettings,
}
"""Recognizer name → its settings class (the names of `recognizers.base.RECOGNIZERS`)."""

GROUPS: tuple[type[Settings], ...] = (
    *AnsweringVLMSettings.__bases__,
    ShowSettings,
    ReadSettings,
    LLMSettings,
    SpecialistSettings,
    CaptionLLMSettings,
    NarraCapSettings,
    MSCESettings,
    BaselineSettings,
    RandomSettings,
)
"""Every class that writes settings of its own, in help order; a field belongs to the first."""


def owner(name: str) -> type[Settings]:
    """The class that first writes the field `name` (its help panel)."""
    return next(cls for cls in GROUPS if name in cls.__dict__.get("__annotations__", {}))


def with_settings(cls: type[Settings]) -> Callable[[T], T]:
    """Give a recognizer class the signature `(label_space, settings=None, *, <fields of cls>)`.

    The keywords are the Python API's convenience (and what sweeps and recipes check names
    against); the recognizer gathers them into one `cls` object, whose defaults are the only ones.
    """

    def decorate(recognizer: T) -> T:
        keyword = inspect.Parameter.KEYWORD_ONLY
        params = [
            inspect.Parameter("label_space", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("settings", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
            *(inspect.Parameter(f.name, keyword, default=f.default) for f in fields(cls)),
        ]
        recognizer.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return recognizer

    return decorate
