"""Peak memory of a manifest evaluation as the dataset grows (10,000 → 100,000 samples).

Each size runs in its own process: a CSV manifest of N rows (pointing at a few real PNG files;
the manifest adapter never loads pixels) is evaluated with a trivial recognizer that names a
label from a hash of the sample id, through the real runner and run store. The process's peak
resident memory is read after the prediction phase (stream, predict, store) and after the
report (scoring every stored row, figures, report files).

    python benchmarks/bench_memory.py [--sizes 10000 100000] [--workdir /tmp/emovlm-bench-memory]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from emovlm.data.base import open_dataset
from emovlm.labels import LabelSpace
from emovlm.run.runner import evaluate, rebuild_report
from emovlm.types import Prediction, Sample

N_FILES = 8


class HashRecognizer:
    """A trivial recognizer: the label is chosen by a hash of the sample id."""

    name = "hash"

    def __init__(self, label_space: LabelSpace) -> None:
        self.label_space = label_space

    def config(self) -> Mapping[str, Any]:
        """Nothing to configure."""
        return {}

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """One label per sample from the SHA-256 of its id."""
        labels = self.label_space.labels
        return [
            Prediction(s.id, labels=(labels[hashlib.sha256(s.id.encode()).digest()[0] % 7],))
            for s in samples
        ]


def peak_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_manifest(folder: Path, n: int) -> Path:
    """A folder of N_FILES small PNGs and a manifest.csv of `n` rows pointing at them."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(N_FILES):
        Image.new("RGB", (16, 16), (30 * i, 100, 200)).save(folder / f"face{i}.png")
    labels = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "path", "label"])
        for i in range(n):
            writer.writerow([f"clip{i:06d}", f"face{i % N_FILES}.png", labels[i % 7]])
    return manifest


def measure(manifest: Path, run_dir: Path, batch_size: int) -> dict[str, float]:
    """Evaluate the manifest into a new run folder; peak memory and seconds of each phase."""
    started = time.perf_counter()
    dataset = open_dataset("manifest", manifest, label_set="dfew")
    opened = peak_mib()
    summary = evaluate(
        dataset,
        HashRecognizer(dataset.label_space),
        run_dir,
        dataset_config=dataset.config(),
        batch_size=batch_size,
        progress=False,
        report=False,
    )
    predicted, predict_seconds = peak_mib(), time.perf_counter() - started
    rebuild_report(run_dir, config_key=summary.config_key)
    return {
        "samples": summary.n_total,
        "peak_mib_after_open": round(opened, 1),
        "peak_mib_after_predicting": round(predicted, 1),
        "peak_mib_after_report": round(peak_mib(), 1),
        "predict_seconds": round(predict_seconds, 1),
        "report_seconds": round(time.perf_counter() - started - predict_seconds, 1),
    }


def main() -> None:
    """Measure each size in a fresh process and print one JSON line per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/emovlm-bench-memory"))
    parser.add_argument("--child", nargs=2, metavar=("MANIFEST", "RUN_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child[0]), Path(args.child[1]), args.batch_size)))
        return
    for n in args.sizes:
        folder = args.workdir / f"n{n}"
        shutil.rmtree(folder, ignore_errors=True)
        manifest = write_manifest(folder / "data", n)
        child = [sys.executable, __file__, "--child", str(manifest), str(folder / "run")]
        done = subprocess.run(
            [*child, "--batch-size", str(args.batch_size)],
            capture_output=True,
            text=True,
            check=True,
        )
        print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
