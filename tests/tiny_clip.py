"""Builders of tiny randomly initialised CLIP models, saved as folders a user could pass.

The transformers CLIP gets a byte-level BPE tokenizer trained here (see tiny_models); the
open_clip model uses open_clip's own bundled tokenizer vocabulary. No weights are downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from tiny_models import tiny_tokenizer

CLIP_SPECIALS = ("<|startoftext|>", "<|endoftext|>")
IMAGE_SIZE = 32


def build_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random transformers CLIP (model + CLIPProcessor) to `folder`."""
    tok = tiny_tokenizer(CLIP_SPECIALS)
    tok.add_special_tokens(
        {
            "bos_token": CLIP_SPECIALS[0],
            "eos_token": CLIP_SPECIALS[1],
            "pad_token": CLIP_SPECIALS[1],
        }
    )
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(folder)
    tok.model_max_length = 64
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": IMAGE_SIZE},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        ),
        tokenizer=tok,
    )
    processor.save_pretrained(folder)
    return folder


def build_tiny_open_clip(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random open_clip model as open_clip_config.json + open_clip_model.safetensors."""
    import open_clip
    from safetensors.torch import save_file

    model_cfg = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": IMAGE_SIZE,
            "layers": 1,
            "width": 32,
            "head_width": 16,
            "patch_size": 8,
        },
        "text_cfg": {
            "context_length": 32,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}), encoding="utf-8"
    )
    torch.manual_seed(seed)
    model = open_clip.CLIP(**model_cfg)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "open_clip_model.safetensors")
    return folder
