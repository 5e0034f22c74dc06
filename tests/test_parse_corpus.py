"""The answer parser against the labelled corpus of realistic VLM answers (tests/data/parse_corpus.jsonl).

Each corpus line is an answer in one model family's style with its expected outcome: the label
(single-label sets), the out-of-set word, no emotion at all (refusals, scene descriptions), or the
exact label set (EMOTIC). The figures per category are printed with `pytest -s` and quoted in
docs/metrics.md.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from emovlm.labels import get_label_space
from emovlm.types import Status

CORPUS = Path(__file__).parent / "data" / "parse_corpus.jsonl"


def _corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]


def _right(row: dict) -> bool:
    parsed = get_label_space(row["space"]).parse(row["text"])
    kind, expect = row["kind"], row["expect"]
    if kind == "label":
        return parsed.status is Status.OK and parsed.labels[0] == expect[0]
    if kind == "out_of_set":
        return parsed.status is Status.OUT_OF_SET and parsed.labels[0] == expect[0]
    if kind == "non_answer":
        return parsed.status is Status.UNPARSED
    labels = [a for a in parsed.labels if a in get_label_space(row["space"])]
    return parsed.status is Status.OK and sorted(labels) == sorted(expect)


def corpus_figures() -> dict[str, tuple[int, int]]:
    """(right, total) per outcome kind, and per kind and style."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in _corpus():
        right = _right(row)
        for key in (row["kind"], f"{row['kind']}/{row['style']}"):
            counts[key][0] += right
            counts[key][1] += 1
    return {key: (r, n) for key, (r, n) in sorted(counts.items())}


def test_corpus_is_large_and_covers_the_styles() -> None:
    rows = _corpus()
    assert len(rows) >= 300
    styles = {row["style"] for row in rows}
    assert {"one-word", "sentence", "reasoning", "list", "json", "markdown", "option"} <= styles
    assert "chinese" in styles
    assert {row["space"] for row in rows} >= {"dfew", "mafw", "emotic"}


def test_parser_meets_the_corpus_targets() -> None:
    figures = corpus_figures()
    for key, (right, total) in figures.items():
        print(f"{key}: {right}/{total} = {right / total:.1%}")
    share = {kind: figures[kind][0] / figures[kind][1] for kind in ("label", "out_of_set")}
    assert share["label"] >= 0.98
    assert share["out_of_set"] >= 0.95
    assert figures["non_answer"][0] / figures["non_answer"][1] >= 0.95
    assert figures["multi"][0] / figures["multi"][1] >= 0.95


@pytest.mark.parametrize("row", [r for r in _corpus() if r["kind"] == "non_answer"], ids=str)
def test_non_answers_are_never_out_of_set(row: dict) -> None:
    assert get_label_space(row["space"]).parse(row["text"]).status is not Status.OUT_OF_SET
