"""The parse audit: how a run's answers were read, counted chunk by chunk for every report.

Counts each outcome, what decided the top answer (`Prediction.extra["parse"]["cue"]`), answers
with a negated label or several candidate labels, the most frequent out-of-set words and unparsed
answers with examples, and, where a judge re-read answers (`extra["judge"]`), how often it agreed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from emovlm.types import Prediction, Status

TOP_WORDS = 10
"""Most frequent out-of-set words and unparsed answers listed."""
EXAMPLES_PER_WORD = 2
"""Example answers kept per out-of-set word."""
EXAMPLE_CHARS = 160
"""Characters of an example answer kept."""
MAX_DISTINCT = 5000
"""Distinct unparsed answers counted; later new ones only add to the total (memory stays bounded)."""


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXAMPLE_CHARS else flat[:EXAMPLE_CHARS] + "…"


class ParseAudit:
    """Counts over predictions fed chunk by chunk; `result()` is the JSON-able audit."""

    def __init__(self) -> None:
        self.n = 0
        self.outcomes: Counter[str] = Counter()
        self.cues: Counter[str] = Counter()
        self.negated = 0
        self.several_labels = 0
        self.out_of_set: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self.unparsed: Counter[str] = Counter()
        self.judged = 0
        self.judge_agreed = 0
        self.judge_changed = 0

    def add(self, predictions: Sequence[Prediction]) -> None:
        """Count the next chunk of predictions."""
        for prediction in predictions:
            self.n += 1
            status = Status(prediction.status)
            self.outcomes[status.value] += 1
            extra = prediction.extra or {}
            reading = extra.get("parse") or {}
            if reading:
                self.cues[reading.get("cue") or "none"] += 1
                self.negated += bool(reading.get("negated"))
                self.several_labels += int(reading.get("n_labels", 0)) > 1
            if status is Status.OUT_OF_SET and prediction.top:
                self._add_out_of_set(prediction.top, prediction.raw)
            elif status is Status.UNPARSED:
                text = _short(prediction.raw or prediction.reason or "(empty)")
                if text in self.unparsed or len(self.unparsed) < MAX_DISTINCT:
                    self.unparsed[text] += 1
            judge = extra.get("judge")
            if judge:
                self.judged += 1
                self.judge_agreed += bool(judge.get("agrees"))
                self.judge_changed += bool(judge.get("used"))

    def _add_out_of_set(self, word: str, raw: str) -> None:
        self.out_of_set[word] += 1
        kept = self.examples.setdefault(word, [])
        if len(kept) < EXAMPLES_PER_WORD and raw and _short(raw) not in kept:
            kept.append(_short(raw))

    def result(self) -> dict[str, Any]:
        """The audit as stored in metrics.json under "parse_audit"."""
        audit: dict[str, Any] = {
            "n": self.n,
            "outcomes": {s.value: self.outcomes.get(s.value, 0) for s in Status},
            "cues": dict(self.cues.most_common()),
            "negated": self.negated,
            "several_labels": self.several_labels,
            "out_of_set_words": [
                {"word": word, "count": count, "examples": self.examples.get(word, [])}
                for word, count in self.out_of_set.most_common(TOP_WORDS)
            ],
            "unparsed": [
                {"text": text, "count": count}
                for text, count in self.unparsed.most_common(TOP_WORDS)
            ],
        }
        if self.judged:
            audit["judge"] = {
                "asked": self.judged,
                "agreed": self.judge_agreed,
                "agreement": self.judge_agreed / self.judged,
                "used": self.judge_changed,
            }
        return audit
