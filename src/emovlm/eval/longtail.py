"""Long-tail diagnosis: per-class F1 against the label word's frequency and the class's share.

Word frequencies come from wordfreq's English and Chinese lists; the words that name each label
ship in `label_words.yaml`. Correlations are Spearman's rho over the classes that have gold
samples, with a sample-bootstrap interval (the samples are resampled and per-class F1 recomputed;
word frequencies stay fixed) and a permutation p-value over classes. See docs/diagnosis.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from emovlm.errors import InputError, MissingDependencyError
from emovlm.eval.bootstrap import percentile_intervals
from emovlm.eval.outcomes import class_scores, label_indicators, resampled_class_scores
from emovlm.labels import LabelSpace
from emovlm.types import Prediction

LANGUAGES = ("en", "zh")
"""Languages whose word frequencies are looked up (wordfreq codes)."""

LABEL_WORDS_FILE = Path(__file__).with_name("label_words.yaml")
"""The label → language → words table shipped with emovlm."""

FREQUENCY_FLOOR = 1e-8
"""Frequency given to a word absent from wordfreq's list (its 'large' lists stop at 1e-8)."""

CI_LEVEL = 0.95
EXACT_PERMUTATIONS_UP_TO = 8
"""Up to this many classes the permutation p-value enumerates every ordering (8! = 40,320)."""
RANDOM_PERMUTATIONS = 9_999
"""Seeded random orderings used for the p-value above that many classes."""

DEFINITIONS = {
    "frequency": (
        "wordfreq 3 'best' list of the language (no tokenisation: each word is one list entry); "
        f"a word absent from the list counts as {FREQUENCY_FLOOR:g}; a label named by several "
        "words (doubt/confusion) has the mean of their frequencies; zipf = log10(frequency) + 9"
    ),
    "spearman": (
        "Spearman's rho (average ranks for ties) over the classes with gold samples; Spearman is "
        "rank-based, so rho against frequency equals rho against log frequency"
    ),
    "ci": (
        "percentile interval over bootstrap resamples of the samples: per-class F1 and gold shares "
        "are recomputed in each resample, word frequencies stay fixed; resamples where a side is "
        "constant are skipped"
    ),
    "p_value": (
        "two-sided permutation p-value of rho over orderings of the classes (exact up to "
        f"{EXACT_PERMUTATIONS_UP_TO} classes, else {RANDOM_PERMUTATIONS} seeded orderings): how "
        "often unrelated classes would correlate as strongly"
    ),
}


@lru_cache(maxsize=1)
def _word_table() -> dict[str, dict[str, tuple[str, ...]]]:
    """The shipped label → language → words table, read once."""
    document = yaml.safe_load(LABEL_WORDS_FILE.read_text(encoding="utf-8"))
    return {
        str(label): {lang: tuple(map(str, words)) for lang, words in entry.items()}
        for label, entry in document.items()
    }


def label_words(space: LabelSpace) -> dict[str, dict[str, tuple[str, ...]]]:
    """The English and Chinese words of each label of `space`, from the shipped table."""
    table = _word_table()
    missing = [
        label
        for label in space.labels
        if label not in table or not all(table[label].get(lang) for lang in LANGUAGES)
    ]
    if missing:
        raise InputError(
            f"no {'/'.join(LANGUAGES)} words for label(s) {', '.join(missing)} of label set "
            f"{space.name!r}; add them to {LABEL_WORDS_FILE}"
        )
    return {label: table[label] for label in space.labels}


def word_frequency(word: str, language: str) -> float:
    """A word's frequency in wordfreq's list of `language` (FREQUENCY_FLOOR when absent)."""
    try:
        import wordfreq
    except ImportError as exc:
        raise MissingDependencyError(
            "the long-tail diagnosis looks up word frequencies with wordfreq, which is not "
            "installed; run: pip install 'emovlm[diagnosis]'"
        ) from exc
    frequencies = wordfreq.get_frequency_dict(language)
    return max(float(frequencies.get(word.lower(), 0.0)), FREQUENCY_FLOOR)


def label_frequencies(space: LabelSpace, language: str) -> np.ndarray:
    """Each label's word frequency in `language`: the mean over the words that name it."""
    words = label_words(space)
    return np.array(
        [
            np.mean([word_frequency(w, language) for w in words[label][language]])
            for label in space.labels
        ]
    )


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho along the last axis (leading axes broadcast); NaN where a side is constant."""
    from scipy.stats import rankdata  # scipy.stats takes over a second to import: only when used

    rx = rankdata(np.asarray(x, dtype=float), axis=-1)
    ry = rankdata(np.asarray(y, dtype=float), axis=-1)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    numerator = (rx * ry).sum(axis=-1)
    denominator = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan
        )


def permutation_p_value(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float | None:
    """Two-sided p-value of Spearman's rho under random pairing of x with y (None if rho is NaN)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    observed = float(spearman(x, y))
    if math.isnan(observed):
        return None
    if len(x) <= EXACT_PERMUTATIONS_UP_TO:
        orderings = np.array(list(itertools.permutations(range(len(x)))))
        rhos = spearman(x[orderings], y)
        return float(np.mean(np.abs(rhos) >= abs(observed) - 1e-12))
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.tile(x, (RANDOM_PERMUTATIONS, 1)), axis=1)
    extreme = np.sum(np.abs(spearman(shuffled, y)) >= abs(observed) - 1e-12)
    return float((1 + extreme) / (1 + RANDOM_PERMUTATIONS))


def diagnose_longtail(
    metrics: Mapping[str, Any],
    gold: Sequence[Sequence[str]],
    predictions: Sequence[Prediction],
    space: LabelSpace,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-class F1 vs word frequency (en, zh) and vs gold share, with rho, intervals and the sink.

    `metrics` is the Scorer's output for the same predictions (it gives the sink and the headline);
    `gold[i]` holds the gold label names of `predictions[i]`. The result is JSON-ready.
    """
    if n_bootstrap < 0:
        raise InputError(f"n_bootstrap must be 0 or more, not {n_bootstrap}")
    gold_matrix, answered = label_indicators(gold, predictions, space)
    n = len(predictions)
    full = class_scores(gold_matrix, answered)
    present = np.flatnonzero(full["support"] > 0)
    frequencies = {lang: label_frequencies(space, lang) for lang in LANGUAGES}
    words = label_words(space)
    gold_share = full["support"] / n
    resampled = (
        resampled_class_scores(gold_matrix, answered, n_bootstrap, seed) if n_bootstrap else None
    )
    sides: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "f1": (full["f1"], None if resampled is None else resampled["f1"]),
        "gold_share": (gold_share, None if resampled is None else resampled["support"] / n),
        **{f"frequency_{lang}": (frequencies[lang], None) for lang in LANGUAGES},
    }
    pairs = [("f1", f"frequency_{lang}") for lang in LANGUAGES]
    pairs += [("f1", "gold_share")]
    pairs += [(f"frequency_{lang}", "gold_share") for lang in LANGUAGES]
    correlations = {
        f"{a}_vs_{b}": _correlation(sides[a], sides[b], present, seed) for a, b in pairs
    }
    f1_intervals = (
        {}
        if resampled is None
        else {
            label: percentile_intervals({"f1": resampled["f1"][:, i]}, CI_LEVEL).get("f1")
            for i, label in enumerate(space.labels)
        }
    )
    per_class = {
        label: {
            "f1": float(full["f1"][i]),
            "f1_ci": f1_intervals.get(label),
            "precision": float(full["precision"][i]),
            "recall": float(full["recall"][i]),
            "support": int(full["support"][i]),
            "answered": int(full["predicted"][i]),
            "gold_share": float(gold_share[i]),
            "predicted_share": float(full["predicted"][i] / n),
            "words": {lang: list(words[label][lang]) for lang in LANGUAGES},
            "frequency": {lang: float(frequencies[lang][i]) for lang in LANGUAGES},
            "zipf": {lang: float(np.log10(frequencies[lang][i]) + 9) for lang in LANGUAGES},
        }
        for i, label in enumerate(space.labels)
    }
    return {
        "label_set": space.name,
        "labels": list(space.labels),
        "multi_label": space.multi_label,
        "n": n,
        "headline": {key: metrics.get(key) for key in ("uar", "war", "macro_f1")},
        "sink": metrics.get("sink"),
        "classes_in_correlations": [space.labels[i] for i in present],
        "per_class": per_class,
        "correlations": correlations,
        "definitions": DEFINITIONS,
        "ci_level": CI_LEVEL,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
    }


def _correlation(
    x: tuple[np.ndarray, np.ndarray | None],
    y: tuple[np.ndarray, np.ndarray | None],
    classes: np.ndarray,
    seed: int,
) -> dict[str, Any]:
    """rho of two per-class quantities over `classes`, its bootstrap interval and p-value."""
    (x_full, x_resampled), (y_full, y_resampled) = x, y
    rho = float(spearman(x_full[classes], y_full[classes]))
    interval = None
    if x_resampled is not None or y_resampled is not None:
        xs = x_full if x_resampled is None else x_resampled
        ys = y_full if y_resampled is None else y_resampled
        rhos = spearman(xs[..., classes], ys[..., classes])
        interval = percentile_intervals({"rho": rhos}, CI_LEVEL).get("rho")
    return {
        "rho": None if math.isnan(rho) else rho,
        "ci": interval,
        "p_value": permutation_p_value(x_full[classes], y_full[classes], seed),
        "n_classes": int(len(classes)),
    }
