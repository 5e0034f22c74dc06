"""CLIP backends for zero-shot choices over word lists: transformers CLIP folders and open_clip models.

No CLIP weights ship in any registry package: users pass a folder (a transformers CLIP model
saved with `save_pretrained`, or an open_clip folder with `open_clip_config.json` and weights) or,
for open_clip, `ARCH:WEIGHTS` (an architecture name and a weights file or pretrained tag).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from emovlm.backends.fingerprint import folder_fingerprint, weight_digest
from emovlm.backends.transformers_vlm import resolve_model_source
from emovlm.errors import BackendError, InputError, MissingDependencyError
from emovlm.registry import Registry

_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pth", "*.pt")


class CLIPBackend(Protocol):
    """An image-text embedding model: unit-length features and the logit scale it was trained with."""

    name: str

    def fingerprint(self) -> Mapping[str, Any]:
        """What identifies the model's outputs (name and content hashes)."""
        ...

    def image_features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) unit-length features of RGB uint8 images of any size."""
        ...

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        """(M, D) unit-length features of texts."""
        ...

    def logit_scale(self) -> float:
        """The factor applied to cosine similarities before the softmax."""
        ...


CLIP_BACKENDS: Registry[CLIPBackend] = Registry(
    "CLIP backend",
    "emovlm.backends",
    (
        (
            "transformers",
            "clip:TransformersCLIP",
            "vlm",
            "a transformers CLIP (or SigLIP) model folder or locally cached hub id",
        ),
        (
            "open_clip",
            "clip:OpenCLIP",
            "vlm",
            "an open_clip model: a folder with open_clip_config.json, or ARCH:WEIGHTS",
        ),
    ),
)
"""CLIP backends by name; each is called as factory(model, device=..., batch_size=...)."""


def zero_shot_probabilities(
    backend: CLIPBackend, image_features: np.ndarray, text_features: np.ndarray
) -> np.ndarray:
    """(N, M) softmax over the M texts of each image's scaled cosine similarities."""
    logits = backend.logit_scale() * image_features @ text_features.T
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def _unit(features: torch.Tensor) -> np.ndarray:
    array = features.detach().float().cpu().numpy()
    return array / np.linalg.norm(array, axis=1, keepdims=True).clip(min=1e-12)


def _pooled(output: Any) -> torch.Tensor:
    """Projected features from `get_*_features`: a tensor, or an output holding them as pooler_output."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class _Batched:
    """Feature extraction in batches of `batch_size`, under inference mode."""

    batch_size: int

    def _in_batches(self, items: Sequence[Any], encode: Any) -> np.ndarray:
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(items), self.batch_size):
                chunks.append(_unit(encode(items[start : start + self.batch_size])))
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


class TransformersCLIP(_Batched):
    """A CLIP-family model loaded with transformers `AutoModel` and `AutoProcessor` from a folder."""

    name = "transformers"

    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 32) -> None:
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        self.model_name = model
        self.source = resolve_model_source(model)
        self.device, self.batch_size = device, batch_size

    def fingerprint(self) -> Mapping[str, Any]:
        """Model name and the folder's content hash."""
        return {"backend": self.name, "model": self.model_name, "files": self._files}

    @cached_property
    def _files(self) -> str:
        return folder_fingerprint(self.source)

    @cached_property
    def _loaded(self) -> tuple[Any, Any]:
        from transformers import AutoModel, AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(self.source)
            model = AutoModel.from_pretrained(self.source).to(self.device).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise BackendError(
                f"cannot load {self.model_name!r} as a CLIP model with transformers "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); pass "
                "a folder with config.json, weights and the processor files"
            ) from exc
        if not hasattr(model, "get_image_features") or not hasattr(model, "logit_scale"):
            raise BackendError(
                f"{self.model_name!r} is a {type(model).__name__}, not an image-text model with "
                "get_image_features and logit_scale (CLIP, SigLIP)"
            )
        return model, processor

    def image_features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Unit-length image features through the model's own image processor."""
        model, processor = self._loaded

        def encode(batch: Sequence[np.ndarray]) -> torch.Tensor:
            pixels = processor(images=list(batch), return_tensors="pt")["pixel_values"]
            return _pooled(model.get_image_features(pixel_values=pixels.to(self.device)))

        return self._in_batches(images, encode)

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length text features (padded, truncated to the model's context)."""
        model, processor = self._loaded

        def encode(batch: Sequence[str]) -> torch.Tensor:
            inputs = processor(text=list(batch), padding=True, truncation=True, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            return _pooled(model.get_text_features(**inputs))

        return self._in_batches(texts, encode)

    def logit_scale(self) -> float:
        """exp(logit_scale) of the model."""
        return float(self._loaded[0].logit_scale.detach().exp())


class OpenCLIP(_Batched):
    """An open_clip model: a folder (open_clip_config.json + weights) or `ARCH:WEIGHTS`."""

    name = "open_clip"

    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 32) -> None:
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        self.model_name, self.device, self.batch_size = model, device, batch_size
        folder = Path(model).expanduser()
        if folder.is_dir():
            if not (folder / "open_clip_config.json").is_file():
                raise InputError(f"--clip-model {model}: the folder has no open_clip_config.json")
            if not any(next(folder.glob(p), None) for p in _WEIGHT_PATTERNS):
                raise InputError(f"--clip-model {model}: the folder has no weights file")
            self.arch, self.pretrained = f"local-dir:{folder}", None
            self._files = folder_fingerprint(folder)
            return
        arch, sep, pretrained = model.partition(":")
        if not sep or not arch or not pretrained:
            raise InputError(
                f"--clip-model {model!r}: give an open_clip folder or ARCH:WEIGHTS, "
                "e.g. ViT-B-32:/models/vit-b-32.pt"
            )
        weights = Path(pretrained).expanduser()
        self.arch, self.pretrained = arch, str(weights) if weights.is_file() else pretrained
        self._files = weight_digest(weights) if weights.is_file() else pretrained

    def fingerprint(self) -> Mapping[str, Any]:
        """Model spec and the weights' content hash (or pretrained tag)."""
        return {"backend": self.name, "model": self.model_name, "files": self._files}

    @cached_property
    def _loaded(self) -> tuple[Any, Any, Any]:
        try:
            import open_clip
        except ImportError as exc:
            raise MissingDependencyError(
                "--clip-backend open_clip needs open_clip; run: pip install open-clip-torch"
            ) from exc
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.arch, pretrained=self.pretrained, device=self.device
            )
            tokenizer = open_clip.get_tokenizer(self.arch)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise BackendError(
                f"open_clip cannot load {self.model_name!r} ({type(exc).__name__}: {exc}); check "
                "the architecture name and weights"
            ) from exc
        return model.eval(), preprocess, tokenizer

    def image_features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Unit-length image features through the model's own preprocessing."""
        model, preprocess, _ = self._loaded

        def encode(batch: Sequence[np.ndarray]) -> torch.Tensor:
            pixels = torch.stack([preprocess(Image.fromarray(image)) for image in batch])
            return model.encode_image(pixels.to(self.device))

        return self._in_batches(images, encode)

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length text features through the model's own tokenizer."""
        model, _, tokenizer = self._loaded
        return self._in_batches(
            texts, lambda batch: model.encode_text(tokenizer(list(batch)).to(self.device))
        )

    def logit_scale(self) -> float:
        """exp(logit_scale) of the model."""
        return float(self._loaded[0].logit_scale.detach().exp())


def build_clip(backend: str, model: str | None, *, device: str = "cpu") -> CLIPBackend:
    """The named CLIP backend on `model`, which the user must give (no CLIP weights ship)."""
    if not model:
        raise InputError(
            "--recognizer narracap-llm needs --clip-model: a CLIP folder (transformers, or open_clip "
            "with open_clip_config.json) or ARCH:WEIGHTS for open_clip; no CLIP weights ship with "
            "emovlm"
        )
    return CLIP_BACKENDS.get(backend)(model, device=device)
