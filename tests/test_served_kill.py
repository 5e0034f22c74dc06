"""A served `emovlm eval` killed with SIGKILL mid-run: every received answer is kept, and after
`--resume` every sample is stored once and only requests in flight at the kill are asked again.

The server answers with latency and holds every request from a chosen number on, so the moment
of the kill is set by counting requests (answered, cached, held), never by timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from emovlm import cli
from openai_server import Behaviour, FakeOpenAIServer
from test_resume import alive, children_of, stored
from test_runner_support import served_eval_args, write_colour_manifest

N_FACES = 24
CONCURRENCY = 4
PROBE = "Reply with one word."
"""The text of the backend's preflight request (not a sample's)."""


def latency(number: int) -> float:
    """Most requests are quick; every fifth one is slow, so answers come back out of order."""
    return 0.3 if number % 5 == 0 else 0.02


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifest of N_FACES faces, no two alike (so no two requests are alike)."""
    return write_colour_manifest(tmp_path_factory.mktemp("faces"), N_FACES)


def eval_args(faces: Path, url: str, run_dir: Path, *more: str) -> list[str]:
    """`emovlm eval` of the faces at `url` with CONCURRENCY requests in flight."""
    args = served_eval_args(faces, url, run_dir, *more)
    args[args.index("--concurrency") + 1] = str(CONCURRENCY)
    return args


def content(request: dict[str, Any]) -> str:
    """A hash of what a request asks (its messages)."""
    text = json.dumps(request["body"]["messages"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def asked(server: FakeOpenAIServer, since: int = 0) -> list[dict[str, Any]]:
    """The sample requests (not preflight probes) the server received, from the `since`-th on."""
    return [r for r in server.received[since:] if r["text"] != PROBE]


def cached_answers(cache: Path) -> int:
    """Answers in the response cache another process is writing (0 before its table exists)."""
    try:
        with sqlite3.connect(cache / "responses.sqlite", timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def wait_for(process: subprocess.Popen[bytes], moment: Callable[[], bool]) -> None:
    """Poll until `moment()` holds, failing if the process ends first."""
    deadline = time.monotonic() + 120
    while not moment():
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.005)


def descendants(pid: int) -> list[int]:
    """Ids of the live processes below `pid` (children, their children, …)."""
    found = children_of(pid)
    for child in list(found):
        found.extend(descendants(child))
    return found


def kill_and_resume(
    faces: Path, tmp_path: Path, held_from: int, in_flight: int, *more: str
) -> tuple[set[str], set[str], list[str]]:
    """Run until requests 1 … held_from-1 are answered and cached and `in_flight` more are held,
    SIGKILL, then resume. Returns the contents answered before the kill, those held at it, and
    those asked after it."""
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    env = {**os.environ, "EMOVLM_CACHE": str(cache)}
    behaviour = Behaviour(latency_of=latency, hold_from=held_from, decode_images=False)
    with FakeOpenAIServer(behaviour, lifetime=300) as server:
        args = eval_args(faces, server.url, run_dir, *more)
        process = subprocess.Popen(
            [sys.executable, "-m", "emovlm", *args], env=env, stderr=subprocess.PIPE
        )
        answered = held_from - 1  # the preflight probe is one of them, and is not cached
        wait_for(
            process,
            lambda: (
                server.answered == answered
                and cached_answers(cache) == max(0, answered - 1)
                and server.calls == answered + in_flight
            ),
        )
        helpers = descendants(process.pid)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
        for pid in helpers:  # a Ray started by the run outlives it by a moment: end it now
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        before = {content(r) for r in asked(server) if r["number"] < held_from}
        held = {content(r) for r in asked(server) if r["number"] >= held_from}
        assert len(before) == max(0, answered - 1)
        server.behaviour.hold_from = None
        server.release.set()
        mark = len(server.received)
        resumed = CliRunner(env={"EMOVLM_CACHE": str(cache)}).invoke(cli.app, [*args, "--resume"])
        assert resumed.exit_code == 0, resumed.output
        after = [content(r) for r in asked(server, mark)]
    assert stored(run_dir) == (N_FACES, N_FACES)
    return before, held, after


@pytest.mark.parametrize("held_from", [1, 2, 7, 15, 22, N_FACES + 1])
def test_sigkill_loses_no_answer_and_resume_asks_only_what_was_in_flight(
    held_from: int, faces: Path, tmp_path: Path
) -> None:
    # in flight: the probe alone, else a full window (fewer near the end)
    in_flight = 1 if held_from == 1 else min(CONCURRENCY, N_FACES - (held_from - 2))
    before, held, after = kill_and_resume(faces, tmp_path, held_from, in_flight)
    assert not [c for c in after if c in before], "an answered request was asked again"
    assert len([c for c in after if c in held]) <= in_flight
    assert sorted(after) == sorted(set(after))  # each sample not answered before: asked once
    assert len(before) + len(after) == N_FACES


@pytest.mark.slow
def test_sigkill_of_a_run_on_ray_loses_no_answer(faces: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    # one actor answers micro-batches of 4 with 4 requests in flight: after the probe and two
    # micro-batches, the third one's 4 requests are held
    before, held, after = kill_and_resume(
        faces, tmp_path, 10, CONCURRENCY, "--executor", "ray", "--workers", "1"
    )
    assert not [c for c in after if c in before], "an answered request was asked again"
    assert len([c for c in after if c in held]) <= CONCURRENCY
    assert sorted(after) == sorted(set(after))  # each sample not answered before: at most once
    # an actor outliving its driver may still receive (and cache) the held answers
    assert N_FACES - CONCURRENCY <= len(before) + len(after) <= N_FACES
