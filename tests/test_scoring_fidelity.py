"""Scoring as the source papers' own code scores: the paper's contains rule, label orders, tied AP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emovlm.cli import main
from emovlm.eval.multilabel import emotic_average_precision, emotic_rank_average_precision
from emovlm.eval.scoring import score_file
from emovlm.labels import get_label_space
from emovlm.types import Status


def test_gpt4v_dfew_scores_are_kept_exactly(gpt4v_dir: Path) -> None:
    metrics, predictions, _ = score_file(
        gpt4v_dir / "dfew.csv", "dfew", gt_column="gt", pred_column="gpt4v", n_bootstrap=0
    )
    assert round(metrics["uar"], 5) == 0.36838
    assert round(metrics["war"], 5) == 0.43688
    assert round(metrics["macro_f1"], 5) == 0.37211
    assert predictions[0].extra["parse"]["cue"] == "list"  # how each answer was read is kept


def test_contains_is_the_papers_case_sensitive_rule(tmp_path: Path) -> None:
    path = tmp_path / "emotic.jsonl"
    rows = [
        {"gt": ["happiness"], "pred": "Happiness, Engagement"},  # Title-Case: not found by `in`
        {"gt": ["engagement"], "pred": "engagement and anticipation"},
        {"gt": ["peace"], "pred": "The person is at peace"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    paper, answers, _ = score_file(path, "emotic", match="contains", n_bootstrap=0)
    lenient, _, _ = score_file(path, "emotic", match="contains-any-case", n_bootstrap=0)
    assert answers[0].status is Status.UNPARSED and answers[0].labels == ()
    assert answers[1].labels == ("engagement", "anticipation")
    assert paper["per_class"]["happiness"]["recall"] == 0.0
    assert lenient["per_class"]["happiness"]["recall"] == 1.0
    assert paper["war"] == pytest.approx(2 / 3) and lenient["war"] == 1.0


def test_contains_counts_labels_inside_words_as_the_script_does() -> None:
    emotic = get_label_space("emotic")
    assert emotic.parse("a painful moment", match="contains").labels == ("pain",)
    assert emotic.parse("a painful moment").status is Status.OUT_OF_SET  # "painful": a word


def test_ferv39k_uses_the_dfer_codebases_label_order() -> None:
    expected = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
    assert get_label_space("ferv39k").labels == expected
    assert get_label_space("dfew").labels == expected


def test_tied_scores_rank_by_rank_depend_on_the_tie_order() -> None:
    gold = np.array([1, 0, 1, 0], bool)
    scores = np.array([1.0, 1.0, 0.0, 0.0])  # 0/1 answers: two tied blocks
    # one point per distinct score: precision 1/2 at recall 1/2 and 2/4 at recall 1
    assert emotic_average_precision(gold, scores) == pytest.approx(0.5)
    # rank by rank, ties in sample order: precisions 1, 1/2, 2/3, 2/4 at recalls 1/2, 1/2, 1, 1
    assert emotic_rank_average_precision(gold, scores) == pytest.approx((6 + 5 * 2 / 3) / 11)
    # the other tie order (a negative first in the top block) gives less
    swapped = emotic_rank_average_precision(gold[[1, 0, 2, 3]], scores)
    assert swapped == pytest.approx(2 / 3)
    assert emotic_rank_average_precision(np.zeros(4, bool), scores) == 0.0


def test_bootstrap_zero_prints_no_nan_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.csv"
    path.write_text("gt,pred\nhappy,happy\nsad,The person looks sad.\nfear,angry\n")
    report = tmp_path / "r"
    argv = ["emovlm", "score", str(path), "-l", "dfew", "--bootstrap", "0", "--report", str(report)]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0
    printed = capsys.readouterr().out
    markdown = (report / "report.md").read_text()
    assert "nan" not in printed.lower() and "nan" not in markdown.lower()
    assert "No intervals" in markdown
