"""`emovlm eval` end to end with the local specialist: samples/s through the runner's batching.

Runs the command line in its own process (CLI, dataset, executor, micro-batches, store, report)
on a manifest of N rows that all point at one real face video, with the specialist sampling
`--frames uniform:8`, and reports samples per second over the command's wall-clock time. Run it
on two trees to compare them:

    .venv/bin/python benchmarks/bench_eval_local.py
    PYTHONPATH=/tmp/before/src .venv/bin/python benchmarks/bench_eval_local.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emovlm.assets import asset_path


def main() -> None:
    """Run the case once per --workers value and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", nargs="+", default=["none", "2"])
    args = parser.parse_args()
    import emovlm

    video = asset_path("feat-video-pexels")
    print(f"emovlm from {Path(emovlm.__file__).parent}; {args.samples} samples of {video.name}\n")
    print("| workers | samples | eval wall s | samples/s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "manifest.csv"
        shutil.copy(video, Path(tmp) / video.name)  # media live under the manifest's folder
        rows = [f"v{i:04d},{video.name},happy" for i in range(args.samples)]
        manifest.write_text("id,path,label\n" + "\n".join(rows) + "\n")
        for workers in args.workers:
            more = [] if workers == "none" else ["--workers", workers]
            command = [
                sys.executable, "-m", "emovlm", "eval", "--dataset", "manifest",
                "--root", str(manifest), "--label-set", "dfew", "--recognizer", "specialist",
                "--frames", "uniform:8", "--batch-size", str(args.batch_size),
                "--bootstrap", "200", "--run-dir", str(Path(tmp) / f"run-{workers}"),
                "--no-progress", *more,
            ]  # fmt: skip
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
            wall = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"emovlm eval failed:\n{done.stderr[-3000:]}")
            print(f"| {workers} | {args.samples} | {wall:.1f} | {args.samples / wall:.2f} |")


if __name__ == "__main__":
    main()
