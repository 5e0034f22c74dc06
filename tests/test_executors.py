"""The local executor: batches in this process or in worker processes, same rows either way."""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from emovlm.errors import EmovlmError, InputError, MissingDependencyError
from emovlm.run.executors import make_executor
from emovlm.run.executors.local import LocalExecutor
from emovlm.run.runner import RunSummary, evaluate
from emovlm.run.store import RunStore
from emovlm.types import Prediction, Sample
from test_runner_support import FileNameRecognizer, ListDataset, make_samples

N_SAMPLES = 30


def run(recognizer: Any, run_dir: Path, executor: Any = None, **options: Any) -> RunSummary:
    """Evaluate the toy dataset of N_SAMPLES samples in batches of 3."""
    return evaluate(
        ListDataset(make_samples(options.pop("n", N_SAMPLES))),
        recognizer,
        run_dir,
        dataset_config={"root": "/data"},
        batch_size=3,
        progress=False,
        report=False,
        executor=executor,
        **options,
    )


def rows(run_dir: Path, key: str) -> list[tuple[Any, ...]]:
    """Stored rows by sample id, without what varies from run to run (seconds of failures,
    tracebacks, pids, and the order predictions finished in)."""
    with RunStore(run_dir) as store:
        predictions, gold = store.rows(key)
    return sorted(
        (p.sample_id, g, p.labels, p.scores, p.raw, p.status, p.reason, _steady(p.extra))
        for p, g in zip(predictions, gold, strict=True)
    )


def _steady(extra: Any) -> dict[str, Any]:
    return {k: v for k, v in extra.items() if k not in ("traceback", "pid")}


@dataclass
class BrokenInstall(FileNameRecognizer):
    """A recognizer whose installation turns out broken at sample clip007."""

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """Raise MissingDependencyError when clip007 comes, else answer."""
        if "clip007" in [s.id for s in samples]:
            raise MissingDependencyError("backend needs package xyz; run: pip install xyz")
        return super().predict(samples)


@dataclass
class HoldsAConnection(FileNameRecognizer):
    """A recognizer holding something that cannot be pickled (like a response cache)."""

    connection: sqlite3.Connection = field(default_factory=lambda: sqlite3.connect(":memory:"))


def test_worker_processes_store_the_same_rows(tmp_path: Path) -> None:
    recognizer = FileNameRecognizer(fail_ids=frozenset({"clip007"}), record_pid=True)
    here = run(recognizer, tmp_path / "here")
    pooled = run(recognizer, tmp_path / "pooled", LocalExecutor(workers=2))

    assert pooled.config_key == here.config_key
    assert (pooled.n_new, pooled.n_failed) == (N_SAMPLES, 1)
    expected = rows(tmp_path / "here", here.config_key)
    assert rows(tmp_path / "pooled", pooled.config_key) == expected
    assert [r[0] for r in expected] == [f"clip{i:03d}" for i in range(N_SAMPLES)]
    with RunStore(tmp_path / "pooled") as store:
        pids = {p.extra["pid"] for p in store.rows(pooled.config_key)[0] if "pid" in p.extra}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids  # predicted by the workers


def test_workers_build_their_recognizer_from_a_factory(tmp_path: Path) -> None:
    factory = functools.partial(FileNameRecognizer, variant="b")
    summary = run(FileNameRecognizer(variant="b"), tmp_path, LocalExecutor(2, factory))
    with RunStore(tmp_path) as store:
        assert {p.extra["variant"] for p in store.rows(summary.config_key)[0]} == {"b"}


def test_a_worker_whose_recognizer_differs_from_the_runs_is_refused(tmp_path: Path) -> None:
    factory = functools.partial(FileNameRecognizer, variant="b")
    with pytest.raises(InputError, match=r"differs from the run's \('filename', settings variant"):
        run(FileNameRecognizer(variant="a"), tmp_path, LocalExecutor(2, factory))
    with RunStore(tmp_path) as store:
        assert store.keys() == []


def test_a_setup_error_in_a_worker_stops_the_run_with_its_own_message(tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError, match="pip install xyz"):
        run(BrokenInstall(), tmp_path, LocalExecutor(workers=2))
    with RunStore(tmp_path) as store:
        (key,) = store.keys()
        stored = {p.sample_id for p in store.rows(key)[0]}
    # the micro-batches before the broken one, and any others in flight, are kept
    assert {f"clip{i:03d}" for i in range(6)} <= stored
    assert not stored & {"clip006", "clip007", "clip008"}


def test_a_killed_worker_stops_the_run_and_resume_completes_it(tmp_path: Path) -> None:
    with pytest.raises(EmovlmError, match="a worker process died while predicting samples"):
        run(FileNameRecognizer(kill_at="clip010"), tmp_path / "run", LocalExecutor(workers=2))
    with RunStore(tmp_path / "run") as store:
        (key,) = store.keys()
        kept = [p.sample_id for p in store.rows(key)[0]]
    assert not set(kept) & {"clip009", "clip010", "clip011"} and len(kept) == len(set(kept))

    resumed = run(FileNameRecognizer(), tmp_path / "run")
    assert (resumed.n_done_before, resumed.n_new) == (len(kept), N_SAMPLES - len(kept))
    reference = run(FileNameRecognizer(), tmp_path / "whole")
    assert rows(tmp_path / "run", key) == rows(tmp_path / "whole", reference.config_key)


def test_a_recognizer_that_cannot_travel_needs_a_factory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be sent to worker processes.*recognizer_factory"):
        run(HoldsAConnection(), tmp_path, LocalExecutor(workers=2))
    summary = run(HoldsAConnection(), tmp_path, LocalExecutor(2, FileNameRecognizer))
    assert summary.n_new == N_SAMPLES


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("cluster", {}, "unknown --executor 'cluster'; choose one of: local, ray"),
        ("local", {"workers": 0}, "--workers must be at least 1"),
        ("ray", {"workers": 0}, "--workers must be at least 1"),
        ("local", {"ray_address": "auto"}, "apply to --executor ray only"),
        ("ray", {"gpus_per_worker": -1.0}, "must be 0 or more"),
    ],
)
def test_wrong_executor_settings_are_refused(
    kind: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_executor(kind, **options)


def test_a_ray_address_without_a_cluster_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "no-cluster"))  # where "auto" looks
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    with pytest.raises(InputError, match="cannot connect to a Ray cluster at --ray-address auto"):
        run(FileNameRecognizer(), tmp_path / "run", make_executor("ray", ray_address="auto"))
