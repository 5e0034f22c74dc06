"""Valence, arousal and dominance answers: read 1-10 ratings from model text, score them by MAE.

Prompts that ask for VAD (`vad=True`) request a line "valence: N, arousal: N, dominance: N"; the
parser accepts `:` or `=`, any case and order, decimals, and "N/10". A rating outside 1-10, or a
missing dimension, gives no VAD for that answer (counted as missing, never guessed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

VAD_DIMENSIONS = ("valence", "arousal", "dominance")
VAD_RANGE = (1.0, 10.0)
_RATING = re.compile(
    r"\b(valence|arousal|dominance)\b\s*(?:[:=]|is)?\s*(\d+(?:\.\d+)?)(?:\s*/\s*10)?", re.I
)

_RATING_WITH_SEPARATOR = re.compile(_RATING.pattern + r"\s*[,;]?", re.I)

Vad = tuple[float, float, float]


def parse_vad(text: str) -> tuple[Vad | None, str]:
    """(valence, arousal, dominance) found in `text`, or None, and the text with the ratings removed.

    The ratings are cut out so that the label parser does not read them as answers.
    """
    found: dict[str, float] = {}
    for match in _RATING.finditer(text):
        found.setdefault(match.group(1).lower(), float(match.group(2)))
    rest = _RATING_WITH_SEPARATOR.sub("", text)
    lines = (line.rstrip(" ,;") for line in rest.splitlines())
    rest = "\n".join(line for line in lines if line.strip(" ,;.:-*"))
    low, high = VAD_RANGE
    values = [found.get(name) for name in VAD_DIMENSIONS]
    if any(v is None or not low <= v <= high for v in values):
        return None, rest
    return (values[0], values[1], values[2]), rest  # type: ignore[return-value]


def vad_errors(gold: Sequence[Vad | None], predicted: Sequence[Vad | None]) -> dict:
    """Mean absolute error per dimension (and their mean) over samples with both gold and answer.

    Returns {"mae": {valence, arousal, dominance, mean}, "n_scored", "n_missing_answer",
    "n_missing_gold"}; MAE values are None when no sample has both.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold VAD entries but {len(predicted)} answers")
    return vad_mae(_as_array(gold), _as_array(predicted))


def vad_mae(gold: np.ndarray, predicted: np.ndarray) -> dict:
    """`vad_errors` of (n, 3) arrays in which a missing VAD is a row of NaN."""
    missing_gold = np.isnan(gold).any(axis=1)
    missing_answer = np.isnan(predicted).any(axis=1)
    both = ~missing_gold & ~missing_answer
    if both.any():
        per_dimension = np.abs(gold[both] - predicted[both]).mean(axis=0)
        mae: dict[str, float | None] = {
            name: float(v) for name, v in zip(VAD_DIMENSIONS, per_dimension, strict=True)
        }
        mae["mean"] = float(per_dimension.mean())
    else:
        mae = dict.fromkeys((*VAD_DIMENSIONS, "mean"))
    return {
        "mae": mae,
        "n_scored": int(both.sum()),
        "n_missing_answer": int((~missing_gold & missing_answer).sum()),
        "n_missing_gold": int(missing_gold.sum()),
    }


def _as_array(values: Sequence[Vad | None]) -> np.ndarray:
    """(n, 3) float array of VAD triples, NaN rows where a value is None."""
    array = np.full((len(values), 3), np.nan)
    for i, value in enumerate(values):
        if value is not None:
            array[i] = value
    return array
