"""Reports are written at the end of a run and rebuilt from the store alone by `emovlm report`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import emovlm.eval.report as report_module
import emovlm.run.store as store_module
from emovlm.errors import InputError
from emovlm.eval.report import write_report
from emovlm.eval.scoring import score_predictions
from emovlm.run.runner import evaluate, rebuild_report
from emovlm.run.store import RunStore
from test_runner_support import DFEW, FileNameRecognizer, ListDataset, make_samples

pytest.importorskip("emovlm.eval.report")

N_BOOTSTRAP = 20
KINDS = ("markdown", "html")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real `emovlm` command line in a new process."""
    code = "from emovlm.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def _plain(metrics: dict) -> dict:
    """Metrics as they read back from metrics.json (tuples become lists)."""
    return json.loads(json.dumps(metrics))


def test_a_run_writes_its_report_and_the_store_alone_rebuilds_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    recognizer = FileNameRecognizer(fail_ids=frozenset({"clip003"}))
    summary = evaluate(
        ListDataset(make_samples(20)),
        recognizer,
        run_dir,
        dataset_config={"root": "/data", "split": "test", "fold": 1},
        progress=False,
        n_bootstrap=N_BOOTSTRAP,
    )
    assert summary.metrics["n"] == 20 and summary.metrics["failed_rate"] == pytest.approx(0.05)
    assert {summary.report_files[k] for k in ("json", "markdown", "html")} == {
        run_dir / "metrics.json",
        run_dir / "report.md",
        run_dir / "report.html",
    }
    written = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert written == _plain(summary.metrics)

    (run_dir / "metrics.json").unlink()
    rebuilt = rebuild_report(run_dir, n_bootstrap=N_BOOTSTRAP)
    assert (rebuilt.config_key, rebuilt.n_total, rebuilt.n_failed) == (summary.config_key, 20, 1)
    assert _plain(rebuilt.metrics) == _plain(summary.metrics)
    assert json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")) == written

    second = evaluate(
        ListDataset(make_samples(20)),
        FileNameRecognizer(variant="b"),
        run_dir,
        dataset_config={"root": "/data", "split": "test", "fold": 1},
        progress=False,
        n_bootstrap=N_BOOTSTRAP,
    )
    assert second.report_files["json"] == run_dir / "reports" / second.config_key / "metrics.json"

    shown = _cli("report", str(run_dir), "--key", second.config_key[:8], "--bootstrap", "10")
    assert shown.returncode == 0, shown.stderr
    assert f"20 stored samples of configuration {second.config_key}" in shown.stdout
    assert "uar" in shown.stdout and "95% CI" in shown.stdout
    with pytest.raises(InputError, match="holds several configurations.*choose one with --key"):
        rebuild_report(run_dir)


def test_report_on_a_folder_that_is_not_a_run_names_what_is_missing(tmp_path: Path) -> None:
    missing = _cli("report", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr

    with pytest.raises(InputError, match=r"not an emovlm run folder: config\.yaml is missing"):
        rebuild_report(tmp_path)
    (tmp_path / "config.yaml").write_text("configurations: []\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"store\.sqlite is missing"):
        rebuild_report(tmp_path)


def test_the_report_read_column_wise_in_chunks_equals_scoring_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHUNK_ROWS", 7)  # 70 rows: ten chunks
    monkeypatch.setattr(report_module, "MAX_EXAMPLES", 6)  # examples come from several chunks
    monkeypatch.setattr(report_module, "MAX_TIMELINES", 3)
    run_dir = tmp_path / "run"
    summary = evaluate(
        ListDataset(make_samples(70)),
        FileNameRecognizer(fail_ids=frozenset({"clip013", "clip041"})),
        run_dir,
        dataset_config={"root": "/data", "split": "test", "fold": 1},
        progress=False,
        n_bootstrap=N_BOOTSTRAP,
        seed=3,
    )
    with RunStore(run_dir) as store:
        rows = sorted(
            zip(*store.rows(summary.config_key), strict=True), key=lambda r: r[0].sample_id
        )
    predictions, gold = [p for p, _ in rows], [g for _, g in rows]
    expected = score_predictions(gold, predictions, DFEW, n_bootstrap=N_BOOTSTRAP, seed=3)
    assert summary.metrics == expected
    assert expected["failed_rate"] > 0 and expected["out_of_set_rate"] > 0

    written = {kind: summary.report_files[kind].read_text(encoding="utf-8") for kind in KINDS}
    title = written["markdown"].splitlines()[0].removeprefix("# ")
    every_row = write_report(
        expected, tmp_path / "all", title=title, predictions=predictions, gold=gold
    )
    for kind in KINDS:
        assert written[kind] == every_row[kind].read_text(encoding="utf-8")
    assert (
        "| clip012 | " in written["markdown"] and "3 of 7 emotion timelines" in written["markdown"]
    )
