"""Ways to turn per-frame label probabilities (T, L) into one clip distribution (L,)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from emovlm.labels import LabelSpace

PEAK_SHARE = 0.25
"""Share of frames (the most expressive ones) that the `peak` aggregator averages."""


def mean_over_frames(probs: np.ndarray, space: LabelSpace) -> np.ndarray:
    """Average probability over all frames."""
    return probs.mean(axis=0)


def expressive_peak(probs: np.ndarray, space: LabelSpace) -> np.ndarray:
    """Average over the most expressive quarter of frames, so a brief expression is not diluted.

    A frame's expressiveness is 1 − P(neutral) when the space has a neutral label, else its
    largest probability.
    """
    has_neutral = "neutral" in space
    intensity = 1.0 - probs[:, space.index("neutral")] if has_neutral else probs.max(axis=1)
    keep = max(1, int(np.ceil(PEAK_SHARE * len(probs))))
    top = np.argsort(-intensity, kind="stable")[:keep]
    return probs[top].mean(axis=0)


AGGREGATORS: dict[str, Callable[[np.ndarray, LabelSpace], np.ndarray]] = {
    "mean": mean_over_frames,
    "peak": expressive_peak,
}
"""Clip aggregators by the name users pass to --aggregate."""
