"""Only one process at a time may work on a run folder; a killed holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emovlm.errors import InputError
from emovlm.run.lock import RunFolderInUseError, RunLock
from emovlm.run.runner import evaluate, rebuild_report
from test_runner_support import FileNameRecognizer, ListDataset, make_samples

_HOLD = (
    "import sys, time; from emovlm.run.lock import RunLock; "
    "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)"
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the lock of tmp_path/run until it is killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    yield process
    process.kill()
    process.wait()


def test_a_second_process_is_refused_naming_folder_and_pid(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(RunFolderInUseError) as refused:
        evaluate(
            ListDataset(make_samples(3)),
            FileNameRecognizer(),
            run_dir,
            dataset_config={},
            progress=False,
            report=False,
        )
    message = str(refused.value)
    assert str(run_dir) in message and f"pid {holder.pid}" in message
    assert isinstance(refused.value, InputError)
    assert not (run_dir / "store.sqlite").exists()


def test_the_kernel_frees_the_lock_of_a_killed_process(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path / "run") as lock:
        assert lock.held
        assert (tmp_path / "run" / ".lock").read_text().strip() == str(os.getpid())
    assert not lock.held


def test_two_locks_in_one_process_also_exclude_each_other(tmp_path: Path) -> None:
    with RunLock(tmp_path), pytest.raises(RunFolderInUseError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()
    with RunLock(tmp_path):
        pass


def test_report_is_refused_while_an_evaluation_holds_the_folder(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "config.yaml").write_text("configurations: []\n", encoding="utf-8")
    (run_dir / "store.sqlite").touch()
    with pytest.raises(RunFolderInUseError, match="in use by another emovlm process"):
        rebuild_report(run_dir)
