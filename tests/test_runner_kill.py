"""A run killed with SIGKILL mid-way keeps its committed rows and resumes to a complete run."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from emovlm.run.runner import evaluate
from emovlm.run.store import RunStore
from test_runner_support import FileNameRecognizer, ListDataset, make_samples

N_SAMPLES = 60
SUPPORT = Path(__file__).with_name("test_runner_support.py")


def _stored_rows(store_file: Path) -> int:
    """Rows in a store another process is writing (0 before its table exists)."""
    if not store_file.is_file():
        return 0
    try:
        with sqlite3.connect(store_file, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _run(run_dir: Path) -> str:
    summary = evaluate(
        ListDataset(make_samples(N_SAMPLES)),
        FileNameRecognizer(),
        run_dir,
        dataset_config={"root": "/data", "split": "test", "fold": 1},
        batch_size=2,
        progress=False,
        report=False,
    )
    return summary.config_key


def test_sigkill_mid_run_then_resume_completes_with_one_row_per_sample(tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, str(SUPPORT), str(run_dir), str(N_SAMPLES), "0.05"])
    deadline = time.monotonic() + 30
    while _stored_rows(run_dir / "store.sqlite") < 10 and time.monotonic() < deadline:
        assert process.poll() is None, "the slow run ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    kept = _stored_rows(run_dir / "store.sqlite")
    assert 10 <= kept < N_SAMPLES

    key = _run(run_dir)  # takes the lock the killed process held, and finishes the run
    reference_key = _run(tmp_path / "whole")
    assert key == reference_key
    with RunStore(run_dir) as resumed, RunStore(tmp_path / "whole") as whole:
        predictions, gold = resumed.rows(key)
        assert [p.sample_id for p in predictions] == [f"clip{i:03d}" for i in range(N_SAMPLES)]
        assert (predictions, gold) == whole.rows(key)
