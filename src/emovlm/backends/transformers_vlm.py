"""The `transformers` VLM backend: any local image-text-to-text model, batched, with its own chat template."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, BatchFeature

from emovlm.backends.fingerprint import folder_fingerprint
from emovlm.backends.transformers_score import (
    label_token_variants,
    score_labels,
    supports_label_scoring,
)
from emovlm.backends.vlm import (
    GenerationSettings,
    Mode,
    VideoInput,
    VLMAnswer,
    VLMRequest,
)
from emovlm.errors import BackendError, InputError, MissingDependencyError
from emovlm.types import Cost

DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "auto": "auto",
}
FramesAs = Literal["auto", "video", "images"]


def resolve_model_source(model: str) -> Path:
    """The folder holding a model: the path itself, or the local Hugging Face cache snapshot of an id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise InputError(
            f"--model {model!r} is not a model folder; pass the folder with config.json"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError) as exc:
        raise InputError(
            f"--model {model!r} is neither a folder nor in the local Hugging Face cache; download "
            f"the weights (e.g. `hf download {model}`) or pass --model FOLDER"
        ) from exc


@dataclass
class LoadedModel:
    """A loaded model with its processor and the facts the backend needs about them."""

    model: Any
    processor: Any
    video_ok: bool
    vision_token_ids: tuple[int, ...]
    context_limit: int | None


def _vision_token_ids(processor: Any) -> tuple[int, ...]:
    ids = []
    for attr in ("image_token_id", "video_token_id"):
        value = getattr(processor, attr, None)
        if isinstance(value, int):
            ids.append(value)
    return tuple(ids)


def context_limit(model: Any) -> int | None:
    """The model's longest input in tokens, when its config says."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    limit = getattr(text, "max_position_embeddings", None)
    return int(limit) if isinstance(limit, int) else None


class TransformersVLM:
    """A local VLM loaded with transformers from a folder (or a locally cached id), run in batches.

    Frames of a video go to the model as a video when its processor has a video processor
    (`frames_as="auto"`), else as separate images. The model loads on first use, so a fully
    cached run never loads it.
    """

    name = "transformers"

    def __init__(
        self,
        model: str,
        *,
        adapter: str | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 8,
        frames_as: FramesAs = "auto",
    ) -> None:
        if dtype not in DTYPES:
            raise InputError(f"--dtype {dtype!r} is unknown; choose one of: {', '.join(DTYPES)}")
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        self.model_name = model
        self.source = resolve_model_source(model)
        self.adapter = Path(adapter).expanduser() if adapter else None
        if self.adapter is not None and not (self.adapter / "adapter_config.json").is_file():
            raise InputError(
                f"--adapter {adapter!r} is not a LoRA adapter folder (no adapter_config.json)"
            )
        self.device, self.dtype = device, dtype
        self.batch_size, self.frames_as = batch_size, frames_as
        self._loaded: LoadedModel | None = None

    @cached_property
    def _fingerprint(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_name,
            "files": folder_fingerprint(self.source),
            "adapter": folder_fingerprint(self.adapter) if self.adapter else None,
            "dtype": self.dtype,
            "frames_as": self.frames_as,
        }

    def fingerprint(self) -> Mapping[str, Any]:
        """Model name, content hashes of the model and adapter folders, and dtype."""
        return self._fingerprint

    def preflight(self, mode: Mode) -> None:
        """Load the model and processor, failing with one clear error if they cannot be used."""
        loaded = self.load_model()
        if mode == "score" and not supports_label_scoring(loaded.model):
            raise BackendError(
                f"score mode with {type(loaded.model).__name__} needs transformers ≥ 5.0 (prompt "
                "positions as generate builds them); upgrade transformers or use --mode generate"
            )

    def load_model(self) -> LoadedModel:
        """Load the processor and model (and adapter) once; later calls reuse them."""
        if self._loaded is not None:
            return self._loaded
        try:
            processor = AutoProcessor.from_pretrained(self.source)
            model = AutoModelForImageTextToText.from_pretrained(
                self.source, dtype=DTYPES[self.dtype]
            )
        except (OSError, ValueError, KeyError) as exc:
            raise BackendError(
                f"cannot load {self.model_name!r} as an image-text-to-text model with transformers "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); pass a "
                "folder with config.json, weights and the processor files of a vision-language model"
            ) from exc
        if getattr(processor, "chat_template", None) is None:
            raise BackendError(
                f"{self.model_name!r} has no chat template in its processor files; add "
                "chat_template.jinja (from the model's release) to the folder"
            )
        if self.adapter is not None:
            model = self._with_adapter(model)
        model = model.to(self.device).eval()
        tokenizer = processor.tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        video_ok = getattr(processor, "video_processor", None) is not None
        if self.frames_as == "video" and not video_ok:
            raise BackendError(f"{self.model_name!r} has no video processor; use frames as images")
        self._loaded = LoadedModel(
            model,
            processor,
            video_ok and self.frames_as != "images",
            _vision_token_ids(processor),
            context_limit(model),
        )
        return self._loaded

    def _with_adapter(self, model: Any) -> Any:
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise MissingDependencyError(
                "--adapter needs peft; run: pip install 'emovlm[vlm]'"
            ) from exc
        return PeftModel.from_pretrained(model, self.adapter).merge_and_unload()

    def generate(
        self, requests: Sequence[VLMRequest], settings: GenerationSettings
    ) -> list[VLMAnswer]:
        """Greedy (temperature 0) or sampled answers, in batches of `batch_size`."""
        return self._run(
            requests, settings.max_new_tokens, lambda inputs: self._generate(inputs, settings)
        )

    def score(
        self, requests: Sequence[VLMRequest], labels: Sequence[str], settings: GenerationSettings
    ) -> list[VLMAnswer]:
        """Each label's log-probability as the answer (prompt computed once per request)."""
        return self._run(requests, 0, lambda inputs: self._score(inputs, labels))

    def _run(
        self,
        requests: Sequence[VLMRequest],
        new_tokens: int,
        step: Callable[[BatchFeature], list[VLMAnswer]],
    ) -> list[VLMAnswer]:
        loaded = self.load_model()
        answers: list[VLMAnswer] = []
        for start in range(0, len(requests), self.batch_size):
            answers.extend(
                self._run_batch(loaded, requests[start : start + self.batch_size], new_tokens, step)
            )
        return answers

    def _run_batch(
        self,
        loaded: LoadedModel,
        batch: Sequence[VLMRequest],
        new_tokens: int,
        step: Callable[[BatchFeature], list[VLMAnswer]],
    ) -> list[VLMAnswer]:
        """Answer a batch; a failing batch is retried one request at a time so failures stay per sample."""
        started = time.perf_counter()
        can_split = len(batch) > 1
        try:
            inputs = self.encode(loaded, batch)
            too_long = self._too_long(loaded, inputs, new_tokens)
            if too_long and not can_split:
                return [VLMAnswer(error=too_long[0])]
            answers = None if too_long else step(inputs)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            if not can_split:
                return [VLMAnswer(error=f"model error: {type(exc).__name__}: {exc}")]
            answers = None
        if answers is None:
            return [a for r in batch for a in self._run_batch(loaded, [r], new_tokens, step)]
        share = (time.perf_counter() - started) / len(batch)
        costs = self._costs(loaded, inputs, share)
        return [replace(a, cost=c + a.cost) for a, c in zip(answers, costs, strict=True)]

    def _too_long(self, loaded: LoadedModel, inputs: BatchFeature, new_tokens: int) -> list[str]:
        if loaded.context_limit is None:
            return []
        lengths = inputs["attention_mask"].sum(1).tolist()
        return [
            f"context too long: {n} input tokens + {new_tokens} new tokens > the model's limit "
            f"{loaded.context_limit}; use fewer --frames or a smaller --image-size"
            for n in lengths
            if n + new_tokens > loaded.context_limit
        ]

    def _costs(self, loaded: LoadedModel, inputs: BatchFeature, seconds: float) -> list[Cost]:
        ids = inputs["input_ids"]
        mask = inputs["attention_mask"].bool()
        visual = torch.zeros_like(ids, dtype=torch.bool)
        for token_id in loaded.vision_token_ids:
            visual |= ids == token_id
        return [
            Cost(
                calls=1,
                input_tokens=int(m.sum()),
                visual_tokens=int((v & m).sum()),
                seconds=seconds,
            )
            for m, v in zip(mask, visual, strict=True)
        ]

    def encode(self, loaded: LoadedModel, batch: Sequence[VLMRequest]) -> BatchFeature:
        """Chat-template texts plus images/videos through the model's own processor, left-padded."""
        texts, images, videos, metadata = [], [], [], []
        for request in batch:
            messages, req_images, req_videos = _messages(request, loaded.video_ok)
            texts.append(
                loaded.processor.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=False
                )
            )
            images.extend(req_images)
            for video in req_videos:
                videos.append(np.stack(video.frames))
                metadata.append(
                    {
                        "total_num_frames": len(video.frames),
                        "fps": video.fps,
                        "frames_indices": list(range(len(video.frames))),
                    }
                )
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
        if videos:
            kwargs["videos"] = videos
            kwargs["video_metadata"] = metadata
        inputs = loaded.processor(**kwargs)
        return inputs.to(self.device)

    def _generate(self, inputs: BatchFeature, settings: GenerationSettings) -> list[VLMAnswer]:
        loaded = self.load_model()
        tokenizer = loaded.processor.tokenizer
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": settings.temperature}
            if not settings.deterministic
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        with torch.inference_mode():
            output = loaded.model.generate(
                **inputs,
                max_new_tokens=settings.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                **sampling,
            )
        new = output[:, inputs["input_ids"].shape[1] :]
        stops = set(_as_list(loaded.model.generation_config.eos_token_id)) | {
            tokenizer.eos_token_id
        }
        answers = []
        for row in new.tolist():
            length = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
            answers.append(
                VLMAnswer(
                    text=tokenizer.decode(row[:length], skip_special_tokens=True).strip(),
                    cost=Cost(output_tokens=length),
                    finish_reason="stop" if length < len(row) or row[-1] in stops else "length",
                )
            )
        return answers

    def _score(self, inputs: BatchFeature, labels: Sequence[str]) -> list[VLMAnswer]:
        loaded = self.load_model()
        tokenizer = loaded.processor.tokenizer
        prompt_end = tokenizer.decode(inputs["input_ids"][0, -1:])
        variants = label_token_variants(
            tokenizer, labels, after_space=not prompt_end[-1:].isspace()
        )
        scores = score_labels(loaded.model, inputs, variants).cpu().tolist()
        return [VLMAnswer(label_logprobs=dict(zip(labels, row, strict=True))) for row in scores]


def _as_list(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else list(value)


def _messages(
    request: VLMRequest, video_ok: bool
) -> tuple[list[dict[str, Any]], list[np.ndarray], list[VideoInput]]:
    """Chat messages in the transformers format, with the images and videos in placeholder order."""
    content: list[dict[str, Any]] = []
    images: list[np.ndarray] = []
    videos: list[VideoInput] = []
    for part in request.parts:
        if isinstance(part, str):
            content.append({"type": "text", "text": part})
        elif isinstance(part, VideoInput) and video_ok:
            content.append({"type": "video"})
            videos.append(part)
        elif isinstance(part, VideoInput):
            content.extend({"type": "image"} for _ in part.frames)
            images.extend(part.frames)
        else:
            content.append({"type": "image"})
            images.append(part)
    messages = [{"role": "user", "content": content}]
    if request.system:
        messages.insert(
            0, {"role": "system", "content": [{"type": "text", "text": request.system}]}
        )
    return messages, images, videos
