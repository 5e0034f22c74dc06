"""Long-tail diagnosis on real GPT-4V answers: F1 vs word frequency and share, the neutral sink."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from itertools import permutations
from pathlib import Path

import numpy as np
import pytest
import wordfreq
from scipy.stats import spearmanr
from sklearn.metrics import f1_score

from emovlm.eval.longtail import (
    FREQUENCY_FLOOR,
    diagnose_longtail,
    label_frequencies,
    label_words,
    permutation_p_value,
    spearman,
)
from emovlm.eval.scoring import score_file
from emovlm.labels import LABEL_SPACES, get_label_space

ABSENT_FROM_WORDFREQ = {"disquietment"}
"""EMOTIC's coinage: no English list has it, so it gets the documented floor."""


def _reference(path: Path, label_set: str) -> tuple[list[str], list[str]]:
    """Gold and top-1 answers read straight from the CSV (non-labels kept as their text)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    gold = [row["gt"].strip().lower() for row in rows]
    top1 = [row["gpt4v"].split(",")[0].strip().lower() for row in rows]
    return gold, top1


@pytest.mark.parametrize(("dataset", "neutral_answers"), [("dfew", 899 / 2337), ("ferv39k", None)])
def test_gpt4v_diagnosis_matches_an_independent_computation_and_names_the_neutral_sink(
    gpt4v_dir: Path, dataset: str, neutral_answers: float | None
) -> None:
    source = gpt4v_dir / f"{dataset}.csv"
    space = get_label_space(dataset)
    metrics, predictions, gold = score_file(source, dataset, pred_column="gpt4v", n_bootstrap=0)
    diagnosis = diagnose_longtail(metrics, gold, predictions, space, n_bootstrap=300, seed=1)

    ref_gold, ref_top1 = _reference(source, dataset)
    labels = list(space.labels)
    f1 = f1_score(ref_gold, ref_top1, labels=labels, average=None, zero_division=0)
    for label, expected in zip(labels, f1, strict=True):
        assert diagnosis["per_class"][label]["f1"] == pytest.approx(expected, abs=1e-12)
    english = wordfreq.get_frequency_dict("en")
    chinese = wordfreq.get_frequency_dict("zh")
    zh_words = {"angry": "愤怒", "disgust": "厌恶", "fear": "恐惧", "happy": "快乐"}
    zh_words |= {"neutral": "中性", "sad": "悲伤", "surprise": "惊讶"}
    for lang, table, words in (
        ("en", english, {label: label for label in labels}),
        ("zh", chinese, zh_words),
    ):
        frequency = [table[words[label]] for label in labels]
        result = diagnosis["correlations"][f"f1_vs_frequency_{lang}"]
        assert result["rho"] == pytest.approx(spearmanr(f1, frequency).statistic, abs=1e-12)
        assert result["n_classes"] == 7
        lo, hi = result["ci"]
        assert -1 <= lo <= hi <= 1
        assert 0 < result["p_value"] <= 1
        for label, value in zip(labels, frequency, strict=True):
            assert diagnosis["per_class"][label]["frequency"][lang] == pytest.approx(value)
    share = [ref_gold.count(label) / len(ref_gold) for label in labels]
    assert diagnosis["correlations"]["f1_vs_gold_share"]["rho"] == pytest.approx(
        spearmanr(f1, share).statistic, abs=1e-12
    )

    sink = diagnosis["sink"]
    assert sink["label"] == "neutral"
    answered_neutral = ref_top1.count("neutral") / len(ref_top1)
    assert sink["predicted_share"] == pytest.approx(answered_neutral)
    assert sink["predicted_share"] > 1.5 * sink["gold_share"]
    if neutral_answers is not None:
        assert answered_neutral == pytest.approx(neutral_answers)
    # the rarest emotion word of the seven (disgust) is also the class the model gets least right
    rarest = min(labels, key=lambda label: english[label])
    assert rarest == "disgust"
    assert diagnosis["per_class"]["disgust"]["f1"] == min(f1)
    json.dumps(diagnosis, ensure_ascii=False)


def test_cli_diagnoses_dfew_natural_and_balanced_and_writes_table_and_plots(
    gpt4v_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "diagnosis"
    command = [sys.executable, "-m", "emovlm", "diagnose", str(gpt4v_dir / "dfew.csv")]
    command += ["-l", "dfew", "--pred-column", "gpt4v", "--out", str(out)]
    command += ["--balanced", "min", "--balance-seed", "7", "--bootstrap", "200"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "Sink: neutral — 38.5% of answers vs 22.8% of gold" in done.stdout.replace("\n", " ")

    diagnosis = json.loads((out / "longtail.json").read_text(encoding="utf-8"))
    balanced = diagnosis["balanced"]
    assert balanced["selection"]["per_class"] == 29  # DFEW's rarest class, disgust, has 29 clips
    assert balanced["n"] == 7 * 29
    assert {row["support"] for row in balanced["per_class"].values()} == {29}
    assert balanced["sink"]["label"] == "neutral"  # the sink stays when every class is equal
    markdown = (out / "longtail.md").read_text(encoding="utf-8")
    assert "**neutral (sink)**" in markdown and "| 中性 |" in markdown
    assert "## Natural vs balanced (29 per class, seed 7)" in markdown
    for name in ("f1_vs_frequency_en", "f1_vs_frequency_zh", "f1_vs_share", "confusion"):
        for suffix in ("", "_balanced"):
            png = out / "figures" / f"{name}{suffix}.png"
            assert png.read_bytes().startswith(b"\x89PNG"), png
            assert f"(figures/{name}{suffix}.png)" in markdown


def test_a_predictions_file_needs_its_label_set(gpt4v_dir: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "emovlm", "diagnose", str(gpt4v_dir / "dfew.csv")]
    command += ["--pred-column", "gpt4v", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "--label-set" in done.stderr


@pytest.mark.parametrize("name", sorted(LABEL_SPACES))
def test_every_label_has_english_and_chinese_words_that_wordfreq_knows(name: str) -> None:
    space = LABEL_SPACES[name]
    words = label_words(space)
    english = wordfreq.get_frequency_dict("en")
    chinese = wordfreq.get_frequency_dict("zh")
    for label in space.labels:
        assert words[label]["en"] == tuple(label.split("/"))
        for word in words[label]["en"]:
            assert (word in english) != (word in ABSENT_FROM_WORDFREQ), word
        assert all(word in chinese for word in words[label]["zh"]), words[label]["zh"]
    assert np.all(label_frequencies(space, "zh") > FREQUENCY_FLOOR)


def test_a_label_named_by_several_words_has_their_mean_frequency_and_absent_words_the_floor() -> (
    None
):
    space = get_label_space("emotic")
    english = wordfreq.get_frequency_dict("en")
    frequencies = dict(zip(space.labels, label_frequencies(space, "en"), strict=True))
    assert frequencies["doubt/confusion"] == pytest.approx(
        (english["doubt"] + english["confusion"]) / 2
    )
    assert frequencies["disquietment"] == FREQUENCY_FLOOR


def test_spearman_agrees_with_scipy_with_ties_and_batches() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(50, 9)).astype(float)  # many ties
    y = rng.normal(size=9)
    rhos = spearman(x, y)
    for row, rho in zip(x, rhos, strict=True):
        expected = spearmanr(row, y).statistic
        assert (np.isnan(rho) and np.isnan(expected)) or rho == pytest.approx(expected)
    assert np.isnan(spearman(np.ones(5), np.arange(5.0)))


def test_permutation_p_value_is_exact_for_few_classes() -> None:
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert permutation_p_value(x, x) == pytest.approx(
        2 / 120
    )  # only x and its reverse are as extreme
    y = np.array([0.3, 0.1, 0.5, 0.2, 0.4])
    observed = abs(spearmanr(x, y).statistic)
    expected = np.mean(
        [abs(spearmanr(np.array(p), y).statistic) >= observed - 1e-12 for p in permutations(x)]
    )
    assert permutation_p_value(x, y) == pytest.approx(expected)
    many = np.arange(12.0)
    assert permutation_p_value(many, many, seed=3) == pytest.approx(1 / 10_000)
