"""Peak memory of `emovlm report RUN` on generated run stores of 10,000 → 1,000,000 rows.

For each size a run folder is written through the real `RunStore` (config.yaml + store.sqlite,
DFEW's single labels or EMOTIC's multi-label sets of 1-3 categories, ranked answers of up to
three labels, ok / out-of-set / unparsed / failed rows with raw text), then `emovlm report`
runs in a fresh process and its peak resident memory (`ru_maxrss` from `wait4`) and wall time
are printed as one JSON line per size.

    python benchmarks/bench_report_memory.py [--sizes 10000 100000 1000000] [--bootstrap 1000]
        [--label-set dfew|emotic] [--workdir /tmp/emovlm-bench-report]

Run it with PYTHONPATH pointing at another checkout's src/ to measure that version the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from emovlm.labels import LabelSpace, get_label_space
from emovlm.run.config import config_key, record_config, resolve_config
from emovlm.run.store import RunStore
from emovlm.types import Prediction, Status

_WRITE_BATCH = 20_000
_STATUSES = (Status.OK, Status.OUT_OF_SET, Status.UNPARSED, Status.FAILED)
_STATUS_SHARES = (0.9, 0.04, 0.03, 0.03)


def _predictions(start: int, n: int, space: LabelSpace, rng: np.random.Generator):
    """`n` generated predictions and gold labels, ids numbered from `start`."""
    labels = space.labels
    gold = np.argsort(rng.random((n, len(labels))), axis=1)[:, :3]
    n_gold = rng.integers(1, 4 if space.multi_label else 2, n)
    ranked = np.argsort(rng.random((n, len(labels))), axis=1)[:, :3]
    depth = rng.integers(1, 4, n)
    status = rng.choice(len(_STATUSES), n, p=_STATUS_SHARES)
    predictions, golds = [], []
    for i in range(n):
        sample_id = f"clip{start + i:07d}"
        outcome = _STATUSES[status[i]]
        answer = tuple(labels[j] for j in ranked[i, : depth[i]])
        if outcome is Status.OK:
            prediction = Prediction(sample_id, answer, raw=f"The person looks {', '.join(answer)}.")
        elif outcome is Status.OUT_OF_SET:
            prediction = Prediction(sample_id, ("bored",), raw="bored", status=outcome)
        elif outcome is Status.UNPARSED:
            prediction = Prediction(sample_id, raw="I cannot tell from this clip.", status=outcome)
        else:
            prediction = Prediction.failed(sample_id, "TimeoutError: no answer after 60 s")
        predictions.append(prediction)
        golds.append(tuple(labels[j] for j in gold[i, : n_gold[i]]))
    return predictions, golds


def write_run(run_dir: Path, n: int, label_set: str = "dfew") -> str:
    """A run folder of `n` generated rows in `label_set`; returns its configuration key."""
    space = get_label_space(label_set)
    config = resolve_config({"name": "bench", "split": "test"}, "generated", {"n": n}, space)
    run_dir.mkdir(parents=True)
    record_config(run_dir, config)
    key = config_key(config)
    rng = np.random.default_rng(n)
    with RunStore(run_dir) as store:
        for start in range(0, n, _WRITE_BATCH):
            predictions, gold = _predictions(start, min(_WRITE_BATCH, n - start), space, rng)
            store.write(key, predictions, gold)
    return key


def measure_report(run_dir: Path, n_bootstrap: int) -> tuple[float, float]:
    """Peak RSS in MiB and seconds of `emovlm report RUN` in a fresh process."""
    command = [sys.executable, "-m", "emovlm", "report", str(run_dir)]
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--bootstrap", str(n_bootstrap)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"emovlm report failed: {process.stderr.read().decode()}")
    return usage.ru_maxrss / 1024, seconds


def main() -> None:
    """Write each size's run folder, then measure its report step; one JSON line per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--label-set", default="dfew", choices=("dfew", "emotic"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/emovlm-bench-report"))
    args = parser.parse_args()
    for n in args.sizes:
        run_dir = args.workdir / f"n{n}"
        shutil.rmtree(run_dir, ignore_errors=True)
        started = time.perf_counter()
        write_run(run_dir, n, args.label_set)
        written = time.perf_counter() - started
        peak, seconds = measure_report(run_dir, args.bootstrap)
        result = {
            "rows": n,
            "label_set": args.label_set,
            "report_peak_mib": round(peak, 1),
            "report_seconds": round(seconds, 1),
            "write_seconds": round(written, 1),
        }
        print(json.dumps(result), flush=True)
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
