"""`emovlm eval` killed at several moments resumes to exactly the uninterrupted run's result."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from emovlm import cli
from emovlm.run.store import RunStore
from openai_server import Behaviour, FakeOpenAIServer
from test_runner_support import served_eval_args, write_colour_manifest

N_FACES = 24


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    """A served model slow enough (50 ms a request, 2 at a time) to be killed mid-run."""
    with FakeOpenAIServer(Behaviour(latency=0.05), lifetime=300) as srv:
        yield srv


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifest of N_FACES coloured faces."""
    return write_colour_manifest(tmp_path_factory.mktemp("faces"), N_FACES)


@pytest.fixture(scope="module")
def reference(
    faces: Path, server: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The run folder of an uninterrupted evaluation."""
    base = tmp_path_factory.mktemp("reference")
    done = invoke(served_eval_args(faces, server.url, base / "run"), base / "cache")
    assert done.exit_code == 0, done.output
    return base / "run"


def invoke(args: list[str], cache: Path) -> Any:
    """Run the command line in this process with its own response cache."""
    return CliRunner(env={"EMOVLM_CACHE": str(cache)}).invoke(cli.app, args)


def start(args: list[str], cache: Path) -> subprocess.Popen[bytes]:
    """Run the command line in a new process."""
    env = {**os.environ, "EMOVLM_CACHE": str(cache)}
    return subprocess.Popen(
        [sys.executable, "-m", "emovlm", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stored(run_dir: Path) -> tuple[int, int]:
    """Rows and distinct sample ids in a store another process is writing ((0, 0) before its
    table exists)."""
    try:
        with sqlite3.connect(run_dir / "store.sqlite", timeout=5) as conn:
            return conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT sample_id) FROM predictions"
            ).fetchone()
    except sqlite3.OperationalError:
        return 0, 0


def lock_holder(run_dir: Path) -> int | None:
    """The pid written in the run folder's lock file, if any."""
    try:
        return int((run_dir / ".lock").read_text().strip())
    except (OSError, ValueError):
        return None


def wait_until(process: subprocess.Popen[bytes], moment: Callable[[], bool]) -> None:
    """Poll until `moment()` holds, failing if the process ends first."""
    deadline = time.monotonic() + 60
    while not moment():
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.005)


def answers(run_dir: Path) -> list[tuple[Any, ...]]:
    """(id, labels, status, raw, reason) of every row of the folder's one configuration, by id
    (rows are stored in the order answers finish)."""
    with RunStore(run_dir) as store:
        (key,) = store.keys()
        predictions, _ = store.rows(key)
    return sorted((p.sample_id, p.labels, p.status, p.raw, p.reason) for p in predictions)


def results(report: Path) -> str:
    """A report file without its Execution section (how the last run went: the requests a
    resumed run sends are fewer)."""
    return report.read_text().split("\n## Execution")[0]


def children_of(pid: int) -> list[int]:
    """Ids of the live processes whose parent is `pid` (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


KILL_MOMENTS: dict[str, Callable[[Path, int], bool]] = {
    "holding the lock, before any row": lambda run, pid: lock_holder(run) == pid,
    "after eight rows": lambda run, pid: stored(run)[0] >= 8,
    "four rows before the end": lambda run, pid: stored(run)[0] >= N_FACES - 4,
    "writing the report": lambda run, pid: stored(run)[0] == N_FACES,
}


@pytest.mark.parametrize("moment", list(KILL_MOMENTS))
def test_sigkill_then_resume_gives_the_uninterrupted_result(
    moment: str, faces: Path, server: FakeOpenAIServer, reference: Path, tmp_path: Path
) -> None:
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    args = served_eval_args(faces, server.url, run_dir)
    process = start(args, cache)
    wait_until(process, lambda: KILL_MOMENTS[moment](run_dir, process.pid))
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL

    resumed = invoke([*args, "--resume"], cache)
    assert resumed.exit_code == 0, resumed.output
    assert answers(run_dir) == answers(reference)
    for name in ("metrics.json", "report.md"):
        assert results(run_dir / name) == results(reference / name)


@pytest.mark.slow
def test_sigkill_with_worker_processes_leaves_no_orphans_and_resumes(
    faces: Path, server: FakeOpenAIServer, reference: Path, tmp_path: Path
) -> None:
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    args = served_eval_args(faces, server.url, run_dir, "--workers", "2")
    process = start(args, cache)
    wait_until(process, lambda: stored(run_dir)[0] >= 8)
    workers = children_of(process.pid)
    assert workers, "the run should have worker processes"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)], "workers outlived their killed parent"

    resumed = invoke([*args, "--resume"], cache)
    assert resumed.exit_code == 0, resumed.output
    assert answers(run_dir) == answers(reference)
    assert (run_dir / "metrics.json").read_text() == (reference / "metrics.json").read_text()


def test_ctrl_c_keeps_the_rows_and_resume_finishes(
    faces: Path, server: FakeOpenAIServer, reference: Path, tmp_path: Path
) -> None:
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    args = served_eval_args(faces, server.url, run_dir)
    process = start(args, cache)
    wait_until(process, lambda: stored(run_dir)[0] >= 8)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode == 130
    assert 8 <= stored(run_dir)[0] < N_FACES

    resumed = invoke([*args, "--resume"], cache)
    assert resumed.exit_code == 0, resumed.output
    assert answers(run_dir) == answers(reference)


def test_a_second_eval_on_a_busy_run_folder_is_refused_clearly(
    faces: Path, server: FakeOpenAIServer, tmp_path: Path
) -> None:
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    args = served_eval_args(faces, server.url, run_dir)
    latency, server.behaviour.latency = server.behaviour.latency, 0.5  # a run lasting seconds
    first = start(args, cache)
    try:
        wait_until(first, lambda: stored(run_dir)[0] >= 4)
        before = stored(run_dir)[0]
        second = subprocess.run(
            [sys.executable, "-m", "emovlm", *args, "--resume"],
            env={**os.environ, "EMOVLM_CACHE": str(cache)},
            capture_output=True,
            text=True,
        )
        assert second.returncode == 2
        assert (
            f"error: run folder {run_dir} is in use by another emovlm process (pid {first.pid})"
            in second.stderr
        )
        assert "Traceback" not in second.stderr
        assert stored(run_dir)[0] >= before
    finally:
        first.wait(timeout=60)
        server.behaviour.latency = latency
    assert first.returncode == 0 and stored(run_dir)[0] == N_FACES
