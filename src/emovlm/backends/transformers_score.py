"""Closed-set label scoring with a local VLM: the prompt is run once, then only each label's tokens.

The prompt (with its images or video) goes through the model once, keeping its key/value cache;
each label's tokens are then run on top of that cache and the cache is cut back to the prompt.
Positions continue the prompt's exactly as `generate` continues them, so a label's score equals
the log-probability that greedy decoding would assign to writing that label.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

LabelTokens = list[list[int]]
"""The token sequences that spell one label (e.g. lowercase and capitalised)."""


def label_token_variants(
    tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], after_space: bool
) -> list[LabelTokens]:
    """Token sequences for each label as the model would write it: as given and capitalised."""
    prefix = " " if after_space else ""
    variants = []
    for label in labels:
        spellings = dict.fromkeys((label, label[:1].upper() + label[1:]))
        token_lists = []
        for spelling in spellings:
            ids = tokenizer.encode(prefix + spelling, add_special_tokens=False)
            if ids and ids not in token_lists:
                token_lists.append(ids)
        variants.append(token_lists)
    return variants


def _accepts(model: PreTrainedModel, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


def supports_label_scoring(model: PreTrainedModel) -> bool:
    """True when this transformers version builds prompt positions the way `score_labels` needs."""
    return not _accepts(model, "position_ids") or hasattr(
        model, "_prepare_position_ids_for_generation"
    )


def _cache_keyword(model: PreTrainedModel) -> str:
    """The forward keyword for the key/value cache: `cache` in current transformers, else the old name."""
    return "cache" if _accepts(model, "cache") else "past_key_values"


def _prompt_position_ids(
    model: PreTrainedModel, inputs: Mapping[str, torch.Tensor]
) -> torch.Tensor | None:
    """The prompt's position ids as `generate` builds them (3-D rope for Qwen-VL families)."""
    if not _accepts(model, "position_ids"):
        return None
    return model._prepare_position_ids_for_generation(inputs["input_ids"], dict(inputs))


@torch.inference_mode()
def score_labels(
    model: PreTrainedModel, inputs: Mapping[str, torch.Tensor], labels: Sequence[LabelTokens]
) -> torch.Tensor:
    """Log-probability (B, L) of each label's tokens right after each prompt of the batch.

    A label with several spellings gets the log of their summed probabilities.
    """
    attention = inputs["attention_mask"]
    positions = _prompt_position_ids(model, inputs)
    extra = {"position_ids": positions} if positions is not None else {}
    if _accepts(model, "logits_to_keep"):
        extra["logits_to_keep"] = 1
    cache = DynamicCache(config=model.config)  # filled in place by the forward pass
    extra[_cache_keyword(model)] = cache
    out = model(**inputs, **extra, use_cache=True)
    first = out.logits[:, -1].float().log_softmax(-1)
    columns = []
    for spellings in labels:
        per_spelling = []
        for tokens in spellings:
            logprob = first[:, tokens[0]]
            if len(tokens) > 1:
                logprob = logprob + _continuation_logprob(
                    model, cache, attention, positions, tokens
                )
                cache.crop(1 - len(tokens))  # negative: drop this label's tokens again
            per_spelling.append(logprob)
        columns.append(torch.logsumexp(torch.stack(per_spelling), dim=0))
    return torch.stack(columns, dim=1)


def _continuation_logprob(
    model: PreTrainedModel,
    cache: DynamicCache,
    attention: torch.Tensor,
    positions: torch.Tensor | None,
    tokens: list[int],
) -> torch.Tensor:
    """Summed log-probability of tokens[1:] given the cached prompt and tokens[0]."""
    batch = attention.shape[0]
    device = attention.device
    feed = torch.tensor(tokens[:-1], device=device).expand(batch, -1)
    steps = feed.shape[1]
    mask = torch.cat([attention, attention.new_ones(batch, steps)], dim=1)
    kwargs: dict[str, object] = {_cache_keyword(model): cache}
    if positions is not None:
        offsets = torch.arange(steps, device=device, dtype=positions.dtype)
        kwargs["position_ids"] = positions[..., -1:] + 1 + offsets
    out = model(input_ids=feed, attention_mask=mask, use_cache=True, **kwargs)
    logprobs = out.logits.float().log_softmax(-1)
    targets = torch.tensor(tokens[1:], device=device).expand(batch, -1)
    return logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).sum(-1)
