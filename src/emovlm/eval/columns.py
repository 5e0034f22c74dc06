"""Scoring from per-sample columns (label indices, answer codes, ranks), filled chunk by chunk.

`ScoreColumns` turns each chunk of predictions into compact NumPy arrays — three small integers
per sample for single-label scoring, K-wide indicator rows for multi-label — and keeps no
`Prediction`; `ScoreColumns.score` computes every metric, diagnostic and bootstrap interval from
those arrays alone. A run of any size is scored by feeding its stored rows a chunk at a time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from emovlm.errors import InputError
from emovlm.eval.bootstrap import (
    bootstrap_code_counts,
    bootstrap_code_sums,
    percentile_intervals,
)
from emovlm.eval.diagnostics import (
    collapse_diagnostics,
    group_recall,
    head_tail_split,
    kl_divergence,
)
from emovlm.eval.metrics import (
    EXTRA_COLUMNS,
    confusion_matrix,
    single_label_scores,
    top_k_accuracy,
)
from emovlm.eval.multilabel import (
    average_precision_per_class,
    multilabel_scores,
    sample_statistics,
)
from emovlm.eval.parse_audit import ParseAudit
from emovlm.eval.vad import Vad, vad_mae
from emovlm.labels import LabelSpace
from emovlm.types import Prediction, Status

CI_LEVEL = 0.95
MAP_DEFINITION = (
    "map: step-wise AP as sklearn.metrics.average_precision_score (sum over distinct score "
    "thresholds of recall gain x precision), mean over all categories; map_emotic: the EMOTIC "
    "authors' 11-point interpolated AP (mean over recall levels 0, 0.1, ..., 1 of the highest "
    "precision at recall >= level), one point per distinct score, mean over all categories; "
    "map_emotic_rank: the same 11-point AP walked rank by rank as the authors' code does, tied "
    "scores in sample order; a category without gold positives has AP 0; missing scores count as 0"
)
_AP_KEYS = (("map", "sklearn"), ("map_emotic", "emotic"), ("map_emotic_rank", "emotic-rank"))
_CI_METRICS = (
    "uar",
    "war",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "out_of_set_rate",
    "unparsed_rate",
    "failed_rate",
)
_MULTI_CI_METRICS = ("hamming", "subset_accuracy", "jaccard")
_STATUS_COLUMN = {Status.OUT_OF_SET: 0, Status.UNPARSED: 1, Status.FAILED: 2}
_PATTERNS_PER_SLICE = 65_536
EXTRA_KEYS = ("vad", "parse", "judge")
"""The `Prediction.extra` entries scoring reads: the answered VAD and, for the parse audit, the
parser's reading and a judge's verdict."""


def gold_indices(
    gold: Sequence[str] | str, sample_id: str, space: LabelSpace, multi: bool
) -> tuple[int, ...]:
    """Label indices of one sample's gold cell, with a clear error for unknown or extra labels."""
    names = (gold,) if isinstance(gold, str) else tuple(gold)
    indices = []
    for name in names:
        label = space.normalize(str(name))
        if label is None:
            raise InputError(
                f"sample {sample_id}: gold label {name!r} is not in label set {space.name!r}; "
                f"valid labels: {', '.join(space.labels)}"
            )
        indices.append(space.index(label))
    if not indices:
        raise InputError(f"sample {sample_id}: no gold label; every sample needs at least one")
    if not multi and len(set(indices)) > 1:
        raise InputError(
            f"sample {sample_id}: {len(indices)} gold labels ({', '.join(names)}) but single-label "
            "scoring takes one; score with multi_label=True (CLI: --multi-label)"
        )
    return tuple(dict.fromkeys(indices))


def answer_code(prediction: Prediction, space: LabelSpace) -> int:
    """Top-1 as a confusion column: a label index, or K + extra column (status is authoritative)."""
    k, status = len(space), Status(prediction.status)
    if status is Status.OK:
        top = prediction.top
        if top in space:
            return space.index(top)
        return k + _STATUS_COLUMN[Status.UNPARSED if top is None else Status.OUT_OF_SET]
    return k + _STATUS_COLUMN[status]


def _gold_rank(prediction: Prediction, gold_label: str, top_correct: bool) -> int:
    """1-based position of the gold label in the ranked answers (top-1 judged by status), or 0."""
    if top_correct:
        return 1
    if Status(prediction.status) is Status.FAILED:
        return 0
    for position, answer in enumerate(prediction.labels[1:], start=2):
        if answer == gold_label:
            return position
    return 0


def _count_out_of_set(
    counts: Counter[str], predictions: Sequence[Prediction], space: LabelSpace, multi: bool
) -> None:
    """Add the answers outside the label space to `counts` (top-1 only when single-label)."""
    for p in predictions:
        status = Status(p.status)
        if status is Status.OUT_OF_SET and not multi:
            counts[p.top if p.top is not None else p.raw.strip()[:60]] += 1
        elif multi and status not in (Status.FAILED, Status.UNPARSED):
            counts.update(a for a in p.labels if a not in space)


class ScoreColumns:
    """The per-sample arrays that scoring needs, for `n` samples added chunk by chunk in order.

    `multi_label=None` follows `space.multi_label`. Single-label: gold index, answer code and gold
    rank per sample (int32). Multi-label: each sample's gold and answer indicators and status
    columns packed into bits (2K + 3 bits), and (n, K) scores once a prediction carries any.
    Gold and answered VAD are (n, 3) arrays, made only when a sample has one.
    """

    def __init__(self, space: LabelSpace, n: int, *, multi_label: bool | None = None) -> None:
        self.space = space
        self.n = n
        self.multi = space.multi_label if multi_label is None else multi_label
        self.filled = 0
        self.longest = 0
        self.out_of_set: Counter[str] = Counter()
        self.audit = ParseAudit()
        self.vad_given = False
        self.gold_vad: np.ndarray | None = None
        self.answer_vad: np.ndarray | None = None
        self.scores: np.ndarray | None = None
        k = len(space)
        if self.multi:
            self.patterns = np.zeros((n, (2 * k + len(EXTRA_COLUMNS) + 7) // 8), dtype=np.uint8)
        else:
            self.gold = np.zeros(n, dtype=np.int32)
            self.answers = np.zeros(n, dtype=np.int32)
            self.ranks = np.zeros(n, dtype=np.int32)

    def add(
        self,
        gold: Sequence[Sequence[str]],
        predictions: Sequence[Prediction],
        gold_vad: Sequence[Vad | None] | None = None,
    ) -> None:
        """Take the next chunk: `predictions[i]` pairs with `gold[i]` (and `gold_vad[i]`)."""
        start, end = self.filled, self.filled + len(predictions)
        if end > self.n:
            raise InputError(f"more than the {self.n} announced predictions were added")
        sets = [
            gold_indices(g, p.sample_id, self.space, self.multi)
            for g, p in zip(gold, predictions, strict=True)
        ]
        if self.multi:
            self._add_multi(start, sets, predictions)
        else:
            self._add_single(start, sets, predictions)
        _count_out_of_set(self.out_of_set, predictions, self.space, self.multi)
        self.audit.add(predictions)
        if gold_vad is not None:
            if len(gold_vad) != len(predictions):
                raise InputError(
                    f"{len(gold_vad)} gold VAD entries but {len(predictions)} predictions; "
                    "pass one (or None) per prediction, in the same order"
                )
            self.vad_given = True
            self.gold_vad = _put_vad(self.gold_vad, self.n, start, gold_vad)
        answered = [p.extra.get("vad") for p in predictions]
        if any(answered):
            self.answer_vad = _put_vad(self.answer_vad, self.n, start, answered)
        self.filled = end

    def _add_single(
        self, start: int, sets: list[tuple[int, ...]], predictions: Sequence[Prediction]
    ) -> None:
        labels = self.space.labels
        gold = [g[0] for g in sets]
        answers = [answer_code(p, self.space) for p in predictions]
        ranks = [
            _gold_rank(p, labels[g], a == g)
            for p, g, a in zip(predictions, gold, answers, strict=True)
        ]
        end = start + len(predictions)
        self.gold[start:end], self.answers[start:end], self.ranks[start:end] = gold, answers, ranks
        self.longest = max(self.longest, max((len(p.labels) for p in predictions), default=0))

    def _add_multi(
        self, start: int, sets: list[tuple[int, ...]], predictions: Sequence[Prediction]
    ) -> None:
        space, labels, k = self.space, list(self.space.labels), len(self.space)
        bits = np.zeros((len(predictions), 2 * k + len(EXTRA_COLUMNS)), dtype=bool)
        for i, (g, p) in enumerate(zip(sets, predictions, strict=True)):
            bits[i, list(g)] = True
            outcome = Status(p.status)
            if outcome in _STATUS_COLUMN:
                bits[i, 2 * k + _STATUS_COLUMN[outcome]] = True
            if outcome not in (Status.FAILED, Status.UNPARSED):
                bits[i, [k + space.index(a) for a in p.labels if a in space]] = True
            if p.scores:
                if self.scores is None:
                    self.scores = np.zeros((self.n, k))
                self.scores[start + i] = [float(p.scores.get(lab, 0.0)) for lab in labels]
        self.patterns[start : start + len(predictions)] = np.packbits(bits, axis=1)

    def score(self, n_bootstrap: int, seed: int) -> dict:
        """Metrics, diagnostics and bootstrap intervals of the `n` samples added."""
        if self.filled != self.n:
            raise InputError(f"{self.filled} predictions were added, {self.n} announced")
        if not self.n:
            raise InputError("nothing to score: no predictions were given")
        if n_bootstrap < 0:
            raise InputError(f"n_bootstrap must be 0 or more, not {n_bootstrap}")
        scorer = self._score_multi_label if self.multi else self._score_single_label
        metrics = scorer(n_bootstrap, seed)
        metrics.setdefault("ci", {})
        metrics.update(ci_level=CI_LEVEL, n_bootstrap=n_bootstrap, seed=seed)
        metrics["parse_audit"] = self.audit.result()
        if self.vad_given and self.answer_vad is not None:
            missing = np.full((self.n, 3), np.nan)
            gold = missing if self.gold_vad is None else self.gold_vad
            metrics["vad"] = vad_mae(gold, self.answer_vad)
        return metrics

    def _score_single_label(self, n_bootstrap: int, seed: int) -> dict:
        space, n = self.space, self.n
        k, labels = len(space), list(space.labels)
        gold, answers = self.gold.astype(np.int64), self.answers.astype(np.int64)
        confusion = confusion_matrix(gold, answers, k)
        scores = single_label_scores(confusion)
        head, tail = head_tail_split(scores["support"])

        metrics = _headline(space, n, scores, multi=False)
        metrics["confusion"] = _confusion_json(labels, confusion)
        longest = min(self.longest, k)
        metrics["topk"] = {
            str(i): v for i, v in top_k_accuracy(self.ranks, max(longest, 1)).items()
        }
        metrics.update(
            collapse_diagnostics(
                labels,
                scores,
                scores["predicted"] - np.diagonal(confusion[:, :k]),
                confusion[:, :k],
                n,
            )
        )
        metrics["out_of_set_answers"] = dict(self.out_of_set.most_common())
        if n_bootstrap:
            n_columns = k + len(EXTRA_COLUMNS)
            gold *= n_columns
            gold += answers
            del answers
            counts = bootstrap_code_counts(gold, k * n_columns, n_bootstrap, seed)
            resampled = single_label_scores(counts.reshape(-1, k, n_columns))
            _add_intervals(metrics, resampled, _CI_METRICS, head, tail)
        return metrics

    def _score_multi_label(self, n_bootstrap: int, seed: int) -> dict:
        """Multi-label scores over the distinct (gold, answer, status) patterns, weighted by count.

        Every per-sample statistic is a function of the sample's pattern, so sums over samples
        (and over bootstrap resamples) are pattern counts times one row per pattern.
        """
        space, n = self.space, self.n
        k, labels = len(space), list(space.labels)
        keys = self.patterns.view(f"V{self.patterns.shape[1]}").ravel()
        unique, codes = np.unique(keys, return_inverse=True)
        counts = np.bincount(codes, minlength=len(unique))
        bits = np.unpackbits(
            unique.view(np.uint8).reshape(len(unique), -1), axis=1, count=2 * k + len(EXTRA_COLUMNS)
        ).astype(bool)
        gold, answered, status = bits[:, :k], bits[:, k : 2 * k], bits[:, 2 * k :].astype(int)
        table = np.hstack([sample_statistics(gold, answered), status])
        width = table.shape[1] - len(EXTRA_COLUMNS)
        scores = multilabel_scores((counts.astype(float) @ table)[:width], k, n)
        for i, column in enumerate(EXTRA_COLUMNS):
            scores[f"{column}_rate"] = (counts @ status[:, i]) / n
        head, tail = head_tail_split(scores["support"])
        cross, by_status = _weighted_cross(gold, answered, status, counts)

        metrics = _headline(space, n, scores, multi=True)
        for name in _MULTI_CI_METRICS:
            metrics[name] = float(scores[name])
        metrics["confusion"] = _confusion_json(labels, np.hstack([cross, by_status]))
        metrics.update(
            collapse_diagnostics(
                labels,
                scores,
                scores["false_positives"],
                cross,
                n,
            )
        )
        metrics["out_of_set_answers"] = dict(self.out_of_set.most_common())
        metrics["map_definition"] = MAP_DEFINITION
        if self.scores is not None:
            _add_average_precision(metrics, gold[codes], self.scores, labels)
        if n_bootstrap:
            sums = bootstrap_code_sums(codes, table, n_bootstrap, seed)
            resampled = multilabel_scores(sums[:, :width], k, n)
            for i, column in enumerate(EXTRA_COLUMNS):
                resampled[f"{column}_rate"] = sums[:, width + i] / n
            _add_intervals(metrics, resampled, _CI_METRICS + _MULTI_CI_METRICS, head, tail)
        return metrics


def _weighted_cross(
    gold: np.ndarray, answered: np.ndarray, status: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gold × answered (K, K) and gold × status (K, 3) counts over patterns, a slice at a time."""
    cross = np.zeros((gold.shape[1], answered.shape[1]), dtype=np.int64)
    by_status = np.zeros((gold.shape[1], status.shape[1]), dtype=np.int64)
    for start in range(0, len(counts), _PATTERNS_PER_SLICE):
        part = slice(start, start + _PATTERNS_PER_SLICE)
        weighted = gold[part].T * counts[part]
        cross += weighted @ answered[part]
        by_status += weighted @ status[part]
    return cross, by_status


def _put_vad(
    target: np.ndarray | None, n: int, start: int, values: Sequence[Sequence[float] | None]
) -> np.ndarray | None:
    """Write a chunk's VAD triples (None: missing) into an (n, 3) NaN-filled array made on need."""
    if target is None:
        if all(v is None for v in values):
            return None
        target = np.full((n, 3), np.nan)
    for i, value in enumerate(values, start=start):
        if value is not None:
            target[i] = value
    return target


def _headline(space: LabelSpace, n: int, scores: Mapping, *, multi: bool) -> dict:
    """The headline numbers and per-class table shared by single- and multi-label scoring."""
    per_class = {
        label: {
            "precision": float(scores["precision"][i]),
            "recall": float(scores["recall"][i]),
            "f1": float(scores["f1"][i]),
            "support": int(scores["support"][i]),
        }
        for i, label in enumerate(space.labels)
    }
    return {
        "n": n,
        "label_set": space.name,
        "labels": list(space.labels),
        "multi_label": multi,
        **{name: float(scores[name]) for name in _CI_METRICS},
        "per_class": per_class,
        "classes_without_support": [
            label for i, label in enumerate(space.labels) if scores["support"][i] == 0
        ],
    }


def _confusion_json(labels: list[str], matrix: np.ndarray) -> dict:
    return {
        "rows": labels,
        "columns": labels + list(EXTRA_COLUMNS),
        "matrix": matrix.astype(int).tolist(),
    }


def _add_intervals(
    metrics: dict,
    resampled: Mapping[str, np.ndarray],
    names: Sequence[str],
    head: np.ndarray,
    tail: np.ndarray,
) -> None:
    """Percentile intervals of the headline metrics, diagnostics and per-class recall/F1."""
    values = {name: resampled[name] for name in names}
    values["kl_pred_gold"] = kl_divergence(resampled["predicted"], resampled["support"])
    values["head_recall"] = group_recall(resampled["recall"], head)
    values["tail_recall"] = group_recall(resampled["recall"], tail)
    metrics["ci"] = percentile_intervals(values, CI_LEVEL)
    for i, label in enumerate(metrics["labels"]):
        per_class = percentile_intervals(
            {"recall": resampled["recall"][:, i], "f1": resampled["f1"][:, i]}, CI_LEVEL
        )
        metrics["per_class"][label].update(recall_ci=per_class["recall"], f1_ci=per_class["f1"])


def _add_average_precision(
    metrics: dict, gold: np.ndarray, scores: np.ndarray, labels: list[str]
) -> None:
    for key, definition in _AP_KEYS:
        per_class = average_precision_per_class(gold, scores, definition=definition)
        metrics[key] = float(per_class.mean())
        for label, ap in zip(labels, per_class, strict=True):
            metrics["per_class"][label][key.replace("map", "ap", 1)] = float(ap)
