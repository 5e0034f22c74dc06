"""Seeded, vectorised percentile bootstrap over samples.

Every metric here is a function of per-sample quantities that add up over samples (confusion
cells, tp/fp/fn counts). A block of resamples is drawn as one index matrix (resamples × n); the
resampled sums of every resample come out of one `bincount` (categorical codes) or one matrix
product (numeric rows), and every metric is then computed for all resamples at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

_INDICES_PER_BLOCK = 1_000_000
"""Resampled indices drawn at once (8 MB); bounds memory whatever n and resamples. The draws do
not depend on it: any block size gives the same resamples."""


def resample_indices(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks (b, n) of sample indices drawn with replacement; same seed, same blocks."""
    rng = np.random.default_rng(seed)
    block = max(1, _INDICES_PER_BLOCK // max(n, 1))
    for start in range(0, n_resamples, block):
        yield rng.integers(0, n, size=(min(block, n_resamples - start), n))


def bootstrap_code_counts(
    codes: np.ndarray, n_codes: int, n_resamples: int, seed: int
) -> np.ndarray:
    """Count of each code in [0, n_codes) per resample of `codes`: shape (n_resamples, n_codes)."""
    codes = np.asarray(codes, dtype=np.int64)
    blocks = []
    for indices in resample_indices(len(codes), n_resamples, seed):
        blocks.append(_block_counts(codes, indices, n_codes))
    return np.concatenate(blocks) if blocks else np.zeros((0, n_codes), dtype=np.int64)


def _block_counts(codes: np.ndarray, indices: np.ndarray, n_codes: int) -> np.ndarray:
    """Count of each code per resample of one (b, n) block, reusing the block's memory."""
    b = len(indices)
    np.take(codes, indices, out=indices)
    indices += np.arange(b)[:, None] * n_codes
    return np.bincount(indices.ravel(), minlength=b * n_codes).reshape(b, n_codes)


def bootstrap_code_sums(
    codes: np.ndarray, table: np.ndarray, n_resamples: int, seed: int
) -> np.ndarray:
    """Sums of `table[codes]` rows (table: (n_codes, d)) in each resample: (n_resamples, d).

    The same resamples as `bootstrap_code_counts`, with each block's counts multiplied by the
    table at once, so memory stays within one block whatever the number of distinct codes.
    """
    codes = np.asarray(codes, dtype=np.int64)
    table = np.asarray(table, dtype=float)
    n_codes = len(table)
    blocks = []
    for indices in resample_indices(len(codes), n_resamples, seed):
        blocks.append(_block_counts(codes, indices, n_codes).astype(float) @ table)
    return np.concatenate(blocks) if blocks else np.zeros((0, table.shape[1]))


def bootstrap_sums(rows: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Column sums of `rows` (n, d) in each resample: (n_resamples, d)."""
    rows = np.asarray(rows, dtype=float)
    n = len(rows)
    blocks = []
    for indices in resample_indices(n, n_resamples, seed):
        b = len(indices)
        shifted = indices + np.arange(b)[:, None] * n
        draws = np.bincount(shifted.ravel(), minlength=b * n).reshape(b, n)
        blocks.append(draws.astype(float) @ rows)
    return np.concatenate(blocks) if blocks else np.zeros((0, rows.shape[1]))


def percentile_intervals(
    resampled: Mapping[str, np.ndarray | None], level: float = 0.95
) -> dict[str, list[float]]:
    """[lo, hi] percentile interval of each metric's resampled values; None and NaN are skipped."""
    tail = (1.0 - level) / 2.0 * 100.0
    intervals: dict[str, list[float]] = {}
    for name, values in resampled.items():
        if values is None:
            continue
        finite = np.asarray(values, dtype=float)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            lo, hi = np.percentile(finite, [tail, 100.0 - tail])
            intervals[name] = [float(lo), float(hi)]
    return intervals
