"""Reports: the files, the plain sink sentence, escaped model text, capped timelines, speed."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from emovlm.errors import InputError
from emovlm.eval.report import MAX_TIMELINES, write_report
from emovlm.eval.scoring import score_file, score_predictions
from emovlm.labels import get_label_space
from emovlm.types import Prediction, Status

DFEW = get_label_space("dfew")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def dfew_scored(gpt4v_dir: Path) -> tuple[dict, list[Prediction], list]:
    return score_file(gpt4v_dir / "dfew.csv", "dfew", pred_column="gpt4v", n_bootstrap=200)


def _embedded_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_report_writes_json_markdown_and_self_contained_html(dfew_scored, tmp_path: Path) -> None:
    metrics, predictions, gold = dfew_scored
    paths = write_report(
        metrics, tmp_path / "r", title="GPT-4V on DFEW", predictions=predictions, gold=gold
    )
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(metrics))
    html = paths["html"].read_text()
    pngs = _embedded_pngs(html)
    assert len(pngs) == 3 and all(png.startswith(PNG_MAGIC) for png in pngs)
    assert "<link" not in html and "http" not in html.split("<body>")[0]  # nothing fetched
    markdown = paths["markdown"].read_text()
    assert "**Sink: neutral — 38.5% of answers vs 22.8% of gold" in markdown
    assert "| neutral (sink) | 533 |" in markdown
    assert "| UAR (macro recall) | 36.8% | [" in markdown
    assert "| pain | 6 |" in markdown  # out-of-set answers are listed
    for name in ("shares", "confusion", "recall_frequency"):
        assert (paths["figures"] / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
        assert f"figures/{name}.png" in markdown
    assert "Sink: neutral" in html and 'class="sink"' in html
    example_rows = re.findall(r'<tr class="(odd|wrong|right)">', html)
    assert 0 < len(example_rows) <= 60
    assert example_rows[0] == "odd"  # the six out-of-set answers come first


def test_model_text_is_escaped_in_html_and_markdown(tmp_path: Path) -> None:
    attack = "<script>alert('x')</script>"
    predictions = [
        Prediction("s1", (attack,), raw=attack, status=Status.OUT_OF_SET),
        Prediction(f"id{attack}", ("happy",), raw=f"happy {attack} | pipe"),
        Prediction("s3", (), raw=attack, status=Status.UNPARSED),
    ]
    gold = [("happy",), ("happy",), ("sad",)]
    metrics = score_predictions(gold, predictions, DFEW, n_bootstrap=20)
    assert metrics["out_of_set_answers"] == {attack: 1}
    paths = write_report(
        metrics, tmp_path, title=f"run {attack}", predictions=predictions, gold=gold
    )
    html = paths["html"].read_text()
    markdown = paths["markdown"].read_text()
    for text in (html, markdown):
        assert "<script" not in text
        assert "&lt;script&gt;" in text
    assert html.count("&lt;script&gt;") >= 5  # title, heading, out-of-set table, examples
    assert "happy &lt;script&gt;alert('x')&lt;/script&gt; \\| pipe" in markdown


def _trajectory(n_frames: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(len(DFEW)), size=n_frames)
    return {
        "times": (np.arange(n_frames) / 5).tolist(),
        "labels": list(DFEW.labels),
        "probs": probs.tolist(),
    }


def test_timelines_are_drawn_and_capped(tmp_path: Path) -> None:
    predictions = [
        Prediction(f"clip{i}", ("happy",), extra={"trajectory": _trajectory(12, i)})
        for i in range(30)
    ]
    gold = [("happy",)] * 30
    metrics = score_predictions(gold, predictions, DFEW, n_bootstrap=0)
    paths = write_report(metrics, tmp_path, title="timelines", predictions=predictions, gold=gold)
    html = paths["html"].read_text()
    assert len(_embedded_pngs(html)) == 3 + MAX_TIMELINES
    assert "emotion timeline of clip0" in html and "emotion timeline of clip24" not in html
    assert f"Showing the first {MAX_TIMELINES} of 30 timelines" in html
    assert f"{MAX_TIMELINES} of 30 emotion timelines" in paths["markdown"].read_text()


def test_malformed_trajectory_is_a_clear_error(tmp_path: Path) -> None:
    bad = {"times": [0.0, 0.2], "labels": ["happy", "sad"], "probs": [[0.5, 0.5]]}
    predictions = [Prediction("clip7", ("happy",), extra={"trajectory": bad})]
    metrics = score_predictions([("happy",)], predictions, DFEW, n_bootstrap=0)
    with pytest.raises(InputError, match=r"sample clip7: extra\['trajectory'\] must be"):
        write_report(metrics, tmp_path, title="t", predictions=predictions, gold=[("happy",)])


def test_multi_label_report_with_average_precision(tmp_path: Path) -> None:
    emotic = get_label_space("emotic")
    rng = np.random.default_rng(3)
    gold, predictions = [], []
    for i in range(200):
        g = tuple(rng.choice(emotic.labels, size=2, replace=False))
        scores = {lab: float(rng.random() * 0.5 + 0.5 * (lab in g)) for lab in emotic.labels}
        ranked = tuple(sorted(scores, key=scores.get, reverse=True)[:3])
        gold.append(g)
        predictions.append(Prediction(str(i), ranked, scores=scores))
    metrics = score_predictions(gold, predictions, emotic, n_bootstrap=100)
    paths = write_report(metrics, tmp_path, title="EMOTIC", predictions=predictions, gold=gold)
    markdown = paths["markdown"].read_text()
    for name in (
        "Hamming loss",
        "subset accuracy",
        "Jaccard (samples)",
        "mAP (sklearn AP)",
        "mAP (EMOTIC AP)",
    ):
        assert f"| {name} |" in markdown
    assert "predicted for" in markdown and "AP (EMOTIC)" in markdown
    assert len(_embedded_pngs(paths["html"].read_text())) == 3


def test_report_for_ten_thousand_predictions_takes_seconds(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gold_idx = rng.integers(0, len(DFEW), 10_000)
    answers = np.where(rng.random(10_000) < 0.4, gold_idx, 2)  # collapse into neutral
    predictions = [
        Prediction(str(i), (DFEW.labels[a],), raw=DFEW.labels[a]) for i, a in enumerate(answers)
    ]
    gold = [(DFEW.labels[g],) for g in gold_idx]
    metrics = score_predictions(gold, predictions, DFEW, n_bootstrap=1000)
    start = time.perf_counter()
    paths = write_report(metrics, tmp_path, title="big", predictions=predictions, gold=gold)
    assert time.perf_counter() - start < 10.0
    assert "Sink: neutral" in paths["markdown"].read_text()


def test_no_sink_when_answers_match_gold_shares(tmp_path: Path) -> None:
    gold = [("happy",), ("sad",)]
    predictions = [Prediction("1", ("happy",)), Prediction("2", ("sad",))]
    metrics = score_predictions(gold, predictions, DFEW, n_bootstrap=0)
    paths = write_report(metrics, tmp_path, title="perfect", predictions=predictions, gold=gold)
    assert "No sink" in paths["markdown"].read_text()
