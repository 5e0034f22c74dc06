"""Runs against a faulty server: mixed failures are retried or recorded, a dead server stops early."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from emovlm import cli
from emovlm.data.base import Dataset, open_dataset
from emovlm.recognizers.vlm import SERVED_WINDOW, VLMRecognizer
from emovlm.run.runner import TooManyFailuresError, evaluate
from emovlm.run.store import RunStore
from emovlm.types import Sample, Status
from openai_server import CHAOS, Behaviour, FakeOpenAIServer
from test_runner_support import (
    COLOURS,
    FileNameRecognizer,
    ListDataset,
    make_samples,
    served_eval_args,
    write_colour_manifest,
)

N_FACES = 120


def expected_answers(n: int) -> list[tuple[str, str]]:
    """(sample id, label) the server's model gives each face of write_colour_manifest."""
    answers = list(COLOURS)
    return [(f"s{i:03d}", answers[i % len(answers)]) for i in range(n)]


def stored(run_dir: Path) -> list[Any]:
    """The predictions of a one-configuration run folder, by sample id (they are stored in the
    order they finish)."""
    with RunStore(run_dir) as store:
        (key,) = store.keys()
        return sorted(store.rows(key)[0], key=lambda p: p.sample_id)


def row_count(run_dir: Path) -> int:
    """Rows in the store, counted by SQLite itself (duplicates included, were there any)."""
    with sqlite3.connect(run_dir / "store.sqlite") as conn:
        return conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]


def test_a_server_failing_30_percent_of_requests_in_mixed_ways(tmp_path: Path) -> None:
    manifest = write_colour_manifest(tmp_path / "faces", N_FACES)
    runner = CliRunner(env={"EMOVLM_CACHE": str(tmp_path / "cache")})
    chaos = Behaviour(failure_rate=0.3, failure_seed=0, slow_seconds=1.0)
    flags = ["--concurrency", "8", "--batch-size", "16", "--timeout", "0.5", "--max-retries", "1"]
    with FakeOpenAIServer(chaos, lifetime=300) as server:
        args = served_eval_args(manifest, server.url, tmp_path / "run", *flags)
        first = runner.invoke(cli.app, args)
        assert first.exit_code == 0, first.output
        assert set(server.injected) == set(CHAOS)  # every kind of failure happened
        rows = stored(tmp_path / "run")
        assert [p.sample_id for p in rows] == [sid for sid, _ in expected_answers(N_FACES)]
        assert row_count(tmp_path / "run") == N_FACES
        failed = [p for p in rows if p.status is Status.FAILED]
        assert failed, "with 2 attempts per request some samples should have failed"
        for p in failed:
            assert any(
                cause in p.reason
                for cause in ("server error 429", "server error 5", "timed out", "cannot reach")
                + ("malformed response",)
            ), p.reason
        answers = dict(expected_answers(N_FACES))
        assert all(p.top == answers[p.sample_id] for p in rows if p.status is not Status.FAILED)

        server.behaviour.failure_rate = 0.0
        server.reset()
        retried = runner.invoke(cli.app, [*args, "--resume", "--retry-failed"])
        assert retried.exit_code == 0, retried.output
        assert server.calls == 1 + len(failed)  # the probe, then only the failed samples

        server.reset()  # a run without faults, answered from the response cache alone
        clean = runner.invoke(cli.app, served_eval_args(manifest, server.url, tmp_path / "clean"))
        assert clean.exit_code == 0 and server.calls == 0, clean.output
    rows = stored(tmp_path / "run")
    assert [(p.sample_id, p.top) for p in rows] == expected_answers(N_FACES)
    assert {p.status for p in rows} == {Status.OK} and row_count(tmp_path / "run") == N_FACES
    metrics = (tmp_path / "run" / "metrics.json").read_text()
    assert metrics == (tmp_path / "clean" / "metrics.json").read_text()


@dataclass
class StopsServerAt:
    """A manifest dataset that stops the server when sample `at` is read (a server dying)."""

    inner: Dataset
    server: FakeOpenAIServer
    at: int
    name: str = "manifest"
    label_space: Any = field(init=False)

    def __post_init__(self) -> None:
        self.label_space = self.inner.label_space

    def samples(self) -> Iterator[Sample]:
        """The manifest's samples, stopping the server on the way."""
        for i, sample in enumerate(self.inner.samples()):
            if i == self.at:
                self.server.stop()
            yield sample

    def config(self) -> dict[str, Any]:
        """The manifest's configuration."""
        return dict(self.inner.config())


def test_a_server_that_goes_away_stops_the_run_early_and_resume_finishes(tmp_path: Path) -> None:
    manifest = write_colour_manifest(tmp_path / "faces", 200)
    data = open_dataset("manifest", manifest, label_set="dfew")
    cache = str(tmp_path / "cache")

    def recognizer(url: str) -> VLMRecognizer:
        return VLMRecognizer(
            data.label_space,
            backend="openai",
            model="tiny-vlm",
            base_url=url,
            frames="uniform:1",
            concurrency=4,
            max_retries=1,
            cache_dir=cache,
        )

    def run(dataset: Any, url: str, **options: Any) -> Any:
        return evaluate(
            dataset,
            recognizer(url),
            tmp_path / "run",
            dataset_config=data.config(),
            batch_size=8,
            progress=False,
            **options,
        )

    with FakeOpenAIServer(lifetime=120) as server:
        url = server.url
        with pytest.raises(TooManyFailuresError) as stopped:
            run(StopsServerAt(data, server, at=16), url, report=False)
    message = str(stopped.value)
    last = re.search(r"stopped after 32 samples in a row failed \(the last: s(\d+)\)", message)
    assert last, message
    # requests in flight when it went away (at most the 4 of --concurrency) may fail otherwise
    reached = re.search(
        rf"(\d+) of them: cannot reach {re.escape(url)} \(model 'tiny-vlm'\)", message
    )
    assert reached and 28 <= int(reached.group(1)) <= 32
    assert "--resume --retry-failed" in message
    rows = stored(tmp_path / "run")
    answered = sum(p.status is Status.OK for p in rows)
    # the server went away when the 17th sample was read: of the 16 before, those not yet
    # answered (at most the window: 4 at the server, 4 prepared) fail too; then 32 in a row;
    # the rest were never tried
    assert 16 - SERVED_WINDOW * 4 <= answered <= 16 and len(rows) == answered + 32
    # "the last" is the 32nd failure to complete, which one depends on the order the window's
    # requests (and their retries) happen to fail in: a failed sample the run stored
    assert f"s{last.group(1)}" in {p.sample_id for p in rows if p.status is Status.FAILED}

    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with FakeOpenAIServer(lifetime=120, port=port) as revived:
        summary = run(data, url, retry_failed=True, n_bootstrap=50)
        assert revived.calls == 1 + 200 - answered  # the probe, the failed ones, the rest
    assert (summary.n_total, summary.n_failed) == (200, 0)
    assert [(p.sample_id, p.top) for p in stored(tmp_path / "run")] == expected_answers(200)
    assert row_count(tmp_path / "run") == 200


def test_only_failures_in_a_row_stop_a_run_and_zero_never_stops(tmp_path: Path) -> None:
    every_other = frozenset(f"clip{i:03d}" for i in range(0, 40, 2))
    summary = evaluate(
        ListDataset(make_samples(40)),
        FileNameRecognizer(fail_ids=every_other),
        tmp_path / "alternating",
        dataset_config={},
        batch_size=1,
        progress=False,
        report=False,
        stop_after_failures=2,
    )
    assert summary.n_failed == 20

    all_of_them = frozenset(s.id for s in make_samples(40))
    for limit, expected_rows in [(5, 5), (0, 40)]:
        run_dir = tmp_path / f"limit{limit}"
        options: dict[str, Any] = {"batch_size": 1, "progress": False, "report": False}
        try:
            evaluate(
                ListDataset(make_samples(40)),
                FileNameRecognizer(fail_ids=all_of_them),
                run_dir,
                dataset_config={},
                stop_after_failures=limit,
                **options,
            )
        except TooManyFailuresError as exc:
            assert "stopped after 5 samples in a row failed (the last: clip004)" in str(exc)
            assert "1 of them: RuntimeError: model server hung up on clip" in str(exc)
        assert row_count(run_dir) == expected_rows
