"""The ray executor on a real local Ray (2 CPUs), started once for this module."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emovlm.errors import MissingDependencyError
from emovlm.run.executors.ray_data import RayExecutor
from emovlm.run.store import RunStore
from emovlm.types import Prediction, Sample
from openai_server import FakeOpenAIServer
from test_executors import N_SAMPLES, BrokenInstall, rows, run
from test_runner_support import FileNameRecognizer, served_eval_args, write_colour_manifest

ray = pytest.importorskip("ray")

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """A local Ray with 2 CPUs and one (declared) GPU whose workers can import the tests."""
    ray.init(
        num_cpus=2,
        num_gpus=1,
        include_dashboard=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}},
    )
    yield
    ray.shutdown()


@dataclass
class ReportsGPUs(FileNameRecognizer):
    """Adds the GPU ids Ray gave the predicting actor to each prediction."""

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """Answer as FileNameRecognizer, with `gpu_ids` in extra."""
        gpus = [str(i) for i in ray.get_gpu_ids()]
        return [
            Prediction(**{**p.__dict__, "extra": {**p.extra, "gpu_ids": gpus}})
            for p in super().predict(samples)
        ]


def test_ray_and_local_store_identical_predictions(tmp_path: Path) -> None:
    recognizer = FileNameRecognizer(fail_ids=frozenset({"clip011"}), record_pid=True)
    local = run(recognizer, tmp_path / "local")
    on_ray = run(recognizer, tmp_path / "ray", RayExecutor(workers=2))

    assert on_ray.config_key == local.config_key
    assert (on_ray.n_total, on_ray.n_new, on_ray.n_failed) == (N_SAMPLES, N_SAMPLES, 1)
    assert rows(tmp_path / "ray", on_ray.config_key) == rows(tmp_path / "local", local.config_key)
    with RunStore(tmp_path / "ray") as store:
        predictions = store.rows(on_ray.config_key)[0]
    pids = {p.extra["pid"] for p in predictions if "pid" in p.extra}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids  # predicted by the actors
    by_id = {p.sample_id: p for p in predictions}  # stored in the order they finished
    assert by_id["clip011"].reason == "RuntimeError: model server hung up on clip011"


def test_a_setup_error_in_an_actor_is_raised_with_its_own_message(tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError, match="pip install xyz"):
        run(BrokenInstall(), tmp_path, RayExecutor(workers=2))
    with RunStore(tmp_path) as store:
        (key,) = store.keys()
        stored = {p.sample_id for p in store.rows(key)[0]}
    # the micro-batches before the broken one, and any others in flight, are kept
    assert {f"clip{i:03d}" for i in range(6)} <= stored
    assert not stored & {"clip006", "clip007", "clip008"}


def test_actors_reserve_their_share_of_gpus(tmp_path: Path) -> None:
    summary = run(ReportsGPUs(), tmp_path, RayExecutor(gpus_per_worker=0.5))
    with RunStore(tmp_path) as store:
        predictions = store.rows(summary.config_key)[0]
    assert {tuple(p.extra["gpu_ids"]) for p in predictions} == {("0",)}  # each actor: GPU 0


@pytest.mark.slow
def test_the_eval_command_joins_a_cluster_or_starts_its_own_ray(tmp_path: Path) -> None:
    manifest = write_colour_manifest(tmp_path / "faces", 16)
    address = ray.get_runtime_context().gcs_address
    env = {**os.environ, "EMOVLM_CACHE": str(tmp_path / "cache")}
    with FakeOpenAIServer(lifetime=300) as server:
        for name, more in [
            ("local", []),
            ("joined", ["--executor", "ray", "--ray-address", address]),
            ("started", ["--executor", "ray", "--workers", "2"]),  # its own local Ray
        ]:
            args = served_eval_args(manifest, server.url, tmp_path / name, "--no-cache", *more)
            done = subprocess.run(
                [sys.executable, "-m", "emovlm", *args], env=env, capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr[-3000:]
    metrics = (tmp_path / "local" / "metrics.json").read_text()
    for name in ("joined", "started"):
        assert _served_rows(tmp_path / name) == _served_rows(tmp_path / "local")
        assert (tmp_path / name / "metrics.json").read_text() == metrics


def _served_rows(run_dir: Path) -> list[tuple[Any, ...]]:
    """(id, labels, status, raw) of a one-configuration run folder, by id (rows are stored in
    the order they finished)."""
    with RunStore(run_dir) as store:
        (key,) = store.keys()
        return sorted((p.sample_id, p.labels, p.status, p.raw) for p in store.rows(key)[0])
