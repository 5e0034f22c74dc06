"""`emovlm score` / score_file on real GPT-4V answers agree with scikit-learn, show the sink."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from emovlm.eval.scoring import score_file
from emovlm.labels import get_label_space
from emovlm.types import Status

EMOVLM = Path(sys.executable).with_name("emovlm")


def _sklearn_on_top1(path: Path, label_set: str) -> dict:
    """Reference: top-1 = first comma-separated answer, lowercased; anything else is 'other'."""
    labels = list(get_label_space(label_set).labels)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    gold = [row["gt"].strip().lower() for row in rows]
    top1 = [row["gpt4v"].split(",")[0].strip().lower() for row in rows]
    top1 = [answer if answer in labels else "<other>" for answer in top1]
    kwargs = {"labels": labels, "average": "macro", "zero_division": 0}
    return {
        "uar": recall_score(gold, top1, **kwargs),
        "war": accuracy_score(gold, top1),
        "macro_precision": precision_score(gold, top1, **kwargs),
        "macro_f1": f1_score(gold, top1, **kwargs),
        "answer_share": {k: v / len(rows) for k, v in Counter(top1).items()},
        "gold_share": {k: v / len(rows) for k, v in Counter(gold).items()},
    }


@pytest.mark.parametrize("dataset", ["dfew", "ferv39k", "rafdb"])
def test_cli_scores_real_gpt4v_answers_like_sklearn_and_reports_the_neutral_sink(
    gpt4v_dir: Path, tmp_path: Path, dataset: str
) -> None:
    source = gpt4v_dir / f"{dataset}.csv"
    out = tmp_path / "out.json"
    command = [str(EMOVLM), "score", str(source), "--label-set", dataset]
    command += ["--gt-column", "gt", "--pred-column", "gpt4v", "--json", str(out)]
    command += ["--report", str(tmp_path / "report"), "--bootstrap", "300"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr

    metrics = json.loads(out.read_text())
    expected = _sklearn_on_top1(source, dataset)
    for key in ("uar", "war", "macro_precision", "macro_f1"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-12), key
        lo, hi = metrics["ci"][key]
        assert lo <= metrics[key] <= hi
    assert metrics["n"] == sum(1 for _ in source.open()) - 1

    neutral_share = expected["answer_share"]["neutral"]
    gold_share = expected["gold_share"]["neutral"]
    assert metrics["sink"]["label"] == "neutral"
    assert metrics["sink"]["predicted_share"] == pytest.approx(neutral_share)
    sentence = (
        f"Sink: neutral — {100 * neutral_share:.1f}% of answers vs {100 * gold_share:.1f}% of gold"
    )
    assert sentence in (tmp_path / "report" / "report.md").read_text()
    assert sentence in done.stdout.replace("\n", " ")
    assert "UAR" in done.stdout and "macro F1" in done.stdout


def test_dfew_gpt4v_figures_match_the_published_collapse(gpt4v_dir: Path) -> None:
    metrics, predictions, gold = score_file(
        gpt4v_dir / "dfew.csv", "dfew", gt_column="gt", pred_column="gpt4v", n_bootstrap=200
    )
    assert metrics["uar"] == pytest.approx(0.368, abs=5e-4)  # UAR 36.8
    assert metrics["war"] == pytest.approx(0.437, abs=5e-4)  # WAR 43.7
    assert metrics["per_class"]["disgust"]["recall"] == pytest.approx(2 / 29)  # about 7%
    assert metrics["predicted_share"]["neutral"] == pytest.approx(899 / 2337)  # about 38%
    assert metrics["out_of_set_answers"] == {"pain": 6}
    assert metrics["out_of_set_rate"] == pytest.approx(6 / 2337)
    assert metrics["sink"]["absorbed"] == sum(metrics["sink"]["absorbed_from"].values())
    assert metrics["tail_recall"] < metrics["head_recall"]
    assert metrics["kl_pred_gold"] > 0.05
    assert metrics["topk"]["1"] == metrics["war"] < metrics["topk"]["2"] < metrics["topk"]["5"]
    # ids come from the `name` column, answers keep their raw text, gold is normalised
    assert predictions[0].sample_id == "2436" and predictions[0].raw.startswith("Neutral,")
    assert gold[0] == ("happy",)
    assert sum(p.status is Status.OUT_OF_SET for p in predictions) == 6
    json.dumps(metrics)  # JSON-able as it is


def test_jsonl_with_lists_scores_failures_and_multi_label_gold(tmp_path: Path) -> None:
    path = tmp_path / "emotic.jsonl"
    rows = [
        {
            "id": "a",
            "gt": ["Happiness", "pleasure"],
            "pred": "happy and pleased",
            "scores": {"happiness": 0.9, "pleasure": 0.6},
        },
        {
            "id": "b",
            "gt": "sadness; suffering",
            "pred": ["Sadness", "pain"],
            "scores": {"sadness": 0.8},
        },
        {"id": "c", "gt": "peace|engagement", "pred": "", "status": "failed", "reason": "timeout"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    metrics, predictions, gold = score_file(path, "emotic", multi_label=True, n_bootstrap=50)
    assert gold == [("happiness", "pleasure"), ("sadness", "suffering"), ("peace", "engagement")]
    assert [p.sample_id for p in predictions] == ["a", "b", "c"]
    assert predictions[2].status is Status.FAILED and predictions[2].reason == "timeout"
    assert metrics["failed_rate"] == pytest.approx(1 / 3)
    assert metrics["per_class"]["happiness"]["recall"] == 1.0
    assert metrics["per_class"]["suffering"]["recall"] == 0.0  # "pain" is its own EMOTIC label
    assert metrics["per_class"]["pain"]["precision"] == 0.0
    assert "map" in metrics and "map_emotic" in metrics


def test_word_and_contains_matching_differ_as_documented(tmp_path: Path) -> None:
    path = tmp_path / "answers.tsv"
    path.write_text("gt\tpred\nsad\tShe looks unhappy\nhappy\tunhappy? no, happy\n")
    word, _, _ = score_file(path, "dfew", match="word", n_bootstrap=0)
    contains, _, _ = score_file(path, "dfew", match="contains", n_bootstrap=0)
    assert word["war"] == 0.5  # "unhappy" is a synonym of sad; the second answer starts with it
    assert (
        contains["war"] == 0.5
    )  # "unhappy" contains "happy": wrong for the first, right for the second
    assert word["per_class"]["sad"]["recall"] == 1.0
    assert contains["per_class"]["happy"]["recall"] == 1.0
