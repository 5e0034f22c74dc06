"""Throughput of one CPU-bound evaluation through each executor on this machine's cores.

The recognizer burns a fixed amount of numpy work per sample (sorting an array `--work`
times; numpy's sort runs on one core), so the run is CPU-bound and predictions are
deterministic. The same samples go through `local` (in this process), `local --workers N`
(worker processes) and `ray --workers N` (Ray Data actors on a local Ray with N CPUs, started
before timing, as a cluster would be), each into a fresh run folder; predictions are checked
to be identical.

    python benchmarks/bench_ray.py [--samples 2000] [--workers 2] [--work 100]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emovlm.labels import LabelSpace, get_label_space
from emovlm.run.executors.local import LocalExecutor
from emovlm.run.executors.ray_data import RayExecutor
from emovlm.run.runner import evaluate
from emovlm.run.store import RunStore
from emovlm.types import Prediction, Sample

DFEW = get_label_space("dfew")


@dataclass
class BusyRecognizer:
    """Sorts a 20,000-number array `work` times per sample; the label comes from the result."""

    work: int
    name: str = "busy"
    label_space: LabelSpace = DFEW

    def config(self) -> Mapping[str, Any]:
        """The amount of work per sample."""
        return {"work": self.work}

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """Burn the work for each sample, then name a label."""
        predictions = []
        for sample in samples:
            values = np.random.default_rng(int(sample.id[1:])).random(20_000)
            for _ in range(self.work):
                values = np.sort(values[::-1])
            label = self.label_space.labels[int(values[7_777] * 1e6) % len(self.label_space)]
            predictions.append(Prediction(sample.id, labels=(label,)))
        return predictions


@dataclass
class Synthetic:
    """`n` samples whose media the recognizer never opens."""

    n: int
    name: str = "synthetic"
    label_space: LabelSpace = DFEW

    def __len__(self) -> int:
        """Number of samples."""
        return self.n

    def samples(self) -> Iterator[Sample]:
        """The samples, in order."""
        for i in range(self.n):
            yield Sample(f"s{i:06d}", Path(f"/nowhere/s{i:06d}.mp4"), (DFEW.labels[i % 7],))


def timed(executor: Any, recognizer: BusyRecognizer, n: int, run_dir: Path) -> float:
    """Seconds to evaluate `n` samples into a new run folder."""
    started = time.perf_counter()
    evaluate(
        Synthetic(n),
        recognizer,
        run_dir,
        dataset_config={},
        batch_size=32,
        progress=False,
        report=False,
        executor=executor,
    )
    return time.perf_counter() - started


def labels(run_dir: Path) -> list[tuple[str, ...]]:
    """The stored answers of a one-configuration run folder."""
    with RunStore(run_dir) as store:
        (key,) = store.keys()
        return [p.labels for p in store.rows(key)[0]]


def main() -> None:
    """Time each executor and print one JSON line each, then the ratio ray / best local."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=int, default=100, help="array sorts per sample")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per executor")
    args = parser.parse_args()
    import ray

    here = str(Path(__file__).resolve().parent)
    sys.path.insert(0, here)
    ray.init(
        num_cpus=args.workers,
        include_dashboard=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([here, *sys.path])}},
    )
    from bench_ray import BusyRecognizer as Importable  # pickled by module name for Ray workers

    recognizer = Importable(args.work)
    base = Path(tempfile.mkdtemp(prefix="emovlm-bench-ray-"))
    executors = {
        "local (this process)": LocalExecutor(),
        f"local --workers {args.workers}": LocalExecutor(workers=args.workers),
        f"ray --workers {args.workers}": RayExecutor(workers=args.workers),
    }
    seconds: dict[str, list[float]] = {name: [] for name in executors}
    reference: list[tuple[str, ...]] = []
    try:
        for _ in range(args.repeat):  # executors take turns, so drifting load hits all
            for name, executor in executors.items():
                run_dir = base / "run"
                seconds[name].append(timed(executor, recognizer, args.samples, run_dir))
                reference = reference or labels(run_dir)
                assert labels(run_dir) == reference, f"{name} answered differently"
                shutil.rmtree(run_dir)
                print(json.dumps({"executor": name, "seconds": round(seconds[name][-1], 2),
                                  "load_average": os.getloadavg()}), flush=True)  # fmt: skip
    finally:
        ray.shutdown()
        shutil.rmtree(base, ignore_errors=True)
    rates = {name: args.samples / statistics.median(times) for name, times in seconds.items()}
    for name, rate in rates.items():
        print(json.dumps({"executor": name, "median_samples_per_s": round(rate, 1)}))
    on_ray = rates[f"ray --workers {args.workers}"]
    best_local = max(v for k, v in rates.items() if k.startswith("local"))
    print(json.dumps({"ray_over_best_local": round(on_ray / best_local, 3)}))


if __name__ == "__main__":
    main()
