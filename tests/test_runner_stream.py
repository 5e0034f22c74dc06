"""Streaming: one slow answer holds up no other sample, rows are stored as answers arrive, and how
the requests went is recorded with the run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import yaml

from openai_server import Behaviour, FakeOpenAIServer
from test_runner_support import served_eval_args, write_colour_manifest
from test_served_kill import stored, wait_for

N_FACES = 24


def test_one_held_answer_blocks_nothing_else_and_rows_are_stored_as_they_come(
    tmp_path: Path,
) -> None:
    faces = write_colour_manifest(tmp_path / "faces", N_FACES)
    release = threading.Event()

    def latency(number: int) -> float:
        if number == 3:  # the second sample request (the first request is the preflight probe)
            release.wait()
        return 0.0

    run_dir = tmp_path / "run"
    with FakeOpenAIServer(Behaviour(latency_of=latency), lifetime=300) as server:
        args = served_eval_args(faces, server.url, run_dir)  # --concurrency 2, --batch-size 4
        process = subprocess.Popen(
            [sys.executable, "-m", "emovlm", *args],
            env={**os.environ, "EMOVLM_CACHE": str(tmp_path / "cache")},
            stderr=subprocess.PIPE,
        )
        try:
            # every other sample is answered and stored while request 3 is still held
            wait_for(
                process,
                lambda: (run_dir / "store.sqlite").is_file() and stored(run_dir)[0] == N_FACES - 1,
            )
            assert server.answered == N_FACES  # the probe and every sample but the held one
        finally:
            release.set()
        assert process.wait(timeout=120) == 0, process.stderr.read().decode()[-3000:]
    assert stored(run_dir) == (N_FACES, N_FACES)
    (entry,) = yaml.safe_load((run_dir / "config.yaml").read_text())["configurations"]
    assert entry["execution"]["concurrency_ceiling"] == 2
    assert "## Execution" in (run_dir / "report.md").read_text()
