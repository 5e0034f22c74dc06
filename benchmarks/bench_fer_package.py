"""Frames per second of the `fer` package's own per-frame video analysis (MTCNN + its TF model).

Runs in the separate environment that benchmarks/fer_env.sh makes, not in emovlm's:

    bash benchmarks/fer_env.sh
    /tmp/fer-venv/bin/python benchmarks/bench_fer_package.py VIDEO [--keras] [--repeat 3]

Every frame is decoded with OpenCV and passed to `FER(mtcnn=True).detect_emotions`, which is what
fer's `Video.analyze` does per frame (without its drawing and saving). One untimed call on the
first frame loads the models first. The pass over the video is repeated and the fastest pass is
reported, since other load on the machine only ever slows a pass down. Prints one JSON object:
frames, seconds, fps (fastest pass), fps_per_pass, tool, version and the settings behind them.
"""

from __future__ import annotations

import argparse
import json
import os
import time

# torchvision (via facenet_pytorch) must load before TensorFlow, or the process segfaults.
import facenet_pytorch  # noqa: F401
import torch

# isort: split

import cv2
import fer
import numpy as np
import tensorflow as tf
from fer.fer import FER


def read_frames(path: str, max_frames: int | None) -> list[np.ndarray]:
    """All frames of the video (BGR, as fer reads them), or the first `max_frames`."""
    capture = cv2.VideoCapture(path)
    frames = []
    while max_frames is None or len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"no frames could be read from {path}")
    return frames


def time_pass(detector: FER, frames: list[np.ndarray]) -> tuple[float, int]:
    """(seconds, faces found) for one detect_emotions call per frame."""
    faces = 0
    start = time.perf_counter()
    for frame in frames:
        faces += len(detector.detect_emotions(frame))
    return time.perf_counter() - start, faces


def main() -> None:
    """Time fer's detector on every frame of a video and print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument(
        "--keras", action="store_true", help="the .hdf5 Keras model, not fer's default TFLite one"
    )
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the video")
    args = parser.parse_args()

    frames = read_frames(args.video, args.max_frames)
    detector = FER(mtcnn=True, use_tflite=not args.keras)
    detector.detect_emotions(frames[0])
    passes = [time_pass(detector, frames) for _ in range(max(args.repeat, 1))]
    seconds, faces = min(passes)
    result = {
        "frames": len(frames),
        "seconds": round(seconds, 3),
        "fps": round(len(frames) / seconds, 2),
        "fps_per_pass": [round(len(frames) / s, 2) for s, _ in passes],
        "tool": "fer FER(mtcnn=True).detect_emotions",
        "version": fer.__version__,
        "emotion_model": "keras-hdf5" if args.keras else "tflite (fer's default)",
        "faces_found": faces,
        "frame_size": list(frames[0].shape[1::-1]),
        "tensorflow": tf.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
