"""Label log-probabilities from a server's top log-probabilities along one generated answer.

Servers return, for each generated token, the k most likely tokens at that step. Walking the
answer token by token, a label still consistent with the text so far either continues with the
generated token (it is resolved at a later step), or branches off through a listed alternative
(its mass is that token's probability, shared evenly when one token starts several labels), or
is not listed at all (it shares the probability left over by the listed tokens). Labels on the
generated path are exact; others are estimates from the first token where they branch off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_TINY = 1e-12


@dataclass(frozen=True)
class TokenStep:
    """One generated token, its log-probability, and the listed alternatives (token → logprob)."""

    token: str
    logprob: float
    top: Mapping[str, float]


def _normalise(text: str) -> str:
    return text.lstrip().lower()


def _completes(text: str, label: str) -> bool:
    return text.rstrip(" \t\n.,;:!?\"'*)").strip() == label


def _adds_text(prefix: str, token: str) -> bool:
    """False for tokens that add nothing visible to the answer (leading whitespace)."""
    return _normalise(prefix + token) != _normalise(prefix)


def _supports(prefix: str, token: str, label: str) -> bool:
    """True when `token` after `prefix` moves the answer toward `label` (or completes it)."""
    text = _normalise(prefix + token)
    return _adds_text(prefix, token) and (label.startswith(text) or _completes(text, label))


def label_logprobs_from_top(steps: Sequence[TokenStep], labels: Sequence[str]) -> dict[str, float]:
    """Estimated log-probability of each label being the answer, from top log-probabilities."""
    result: dict[str, float] = {}
    pending = list(labels)
    prefix, consumed = "", 0.0
    for step in steps:
        if not pending:
            break
        if not _adds_text(prefix, step.token):
            prefix += step.token
            consumed += step.logprob
            continue
        still, branched, unlisted = [], {}, []
        for label in pending:
            key = label.lower()
            if _supports(prefix, step.token, key):
                if _completes(_normalise(prefix + step.token), key):
                    result[label] = consumed + step.logprob
                else:
                    still.append(label)
                continue
            tokens = [t for t in step.top if t != step.token and _supports(prefix, t, key)]
            if tokens:
                branched[label] = tokens
            else:
                unlisted.append(label)
        _assign_branched(result, branched, step.top, consumed)
        _assign_unlisted(result, unlisted, step.top, consumed)
        pending = still
        prefix += step.token
        consumed += step.logprob
    if _normalise(prefix):  # the answer stopped inside these labels: the rest is taken as certain
        result.update((label, consumed) for label in pending)
    for label in labels:  # no visible answer at all
        result.setdefault(label, math.log(_TINY))
    return {label: result[label] for label in labels}


def _assign_branched(
    result: dict[str, float],
    branched: dict[str, list[str]],
    top: Mapping[str, float],
    consumed: float,
) -> None:
    sharers: dict[str, int] = {}
    for tokens in branched.values():
        for token in tokens:
            sharers[token] = sharers.get(token, 0) + 1
    for label, tokens in branched.items():
        mass = sum(math.exp(top[t]) / sharers[t] for t in tokens)
        result[label] = consumed + math.log(max(mass, _TINY))


def _assign_unlisted(
    result: dict[str, float], unlisted: list[str], top: Mapping[str, float], consumed: float
) -> None:
    if not unlisted:
        return
    listed = sum(math.exp(v) for v in top.values())
    lowest = min(top.values(), default=0.0)
    share = max(1.0 - listed, _TINY) / len(unlisted)
    for label in unlisted:
        result[label] = consumed + min(lowest, math.log(share))
