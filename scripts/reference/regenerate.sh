#!/usr/bin/env bash
# Regenerates tests/data/expression_reference.json: the probabilities of the two ported expression
# models in their ORIGINAL runtimes (fer's Keras/TensorFlow model, face-api's TF.js model) on the
# fixed face crops the file lists. Each runtime gets its own environment, made here.
#
#   bash scripts/reference/regenerate.sh [REFERENCE.json]      # default: the file the tests read
#   git diff tests/data/expression_reference.json              # then see what moved
#
# Needs emovlm's venv (.venv, for the photos in emovlm's asset cache), python3 and node ≥ 18.
# Environments: ${FER_KERAS_VENV:-/tmp/fer-keras-venv}, ${FACEAPI_NODE:-/tmp/faceapi-node}.
set -euo pipefail

cd "$(dirname "$0")/../.."
REFERENCE=${1:-tests/data/expression_reference.json}
FER_KERAS_VENV=${FER_KERAS_VENV:-/tmp/fer-keras-venv}
FACEAPI_NODE=${FACEAPI_NODE:-/tmp/faceapi-node}
EMOVLM_PYTHON=${EMOVLM_PYTHON:-.venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

[ -x "$FER_KERAS_VENV/bin/python" ] || bash scripts/reference/fer_env.sh "$FER_KERAS_VENV"
[ -d "$FACEAPI_NODE/node_modules/@vladmandic/face-api" ] || bash scripts/reference/faceapi_env.sh "$FACEAPI_NODE"

"$EMOVLM_PYTHON" scripts/reference/reference_io.py crops "$REFERENCE" "$WORK/crops"
"$FER_KERAS_VENV/bin/python" scripts/reference/fer_keras.py "$WORK/crops" "$WORK/fer.json"
NODE_PATH="$FACEAPI_NODE/node_modules" node scripts/reference/faceapi.js "$WORK/crops" "$WORK/faceapi.json"
"$EMOVLM_PYTHON" scripts/reference/reference_io.py merge "$REFERENCE" fer-xception "$WORK/fer.json"
"$EMOVLM_PYTHON" scripts/reference/reference_io.py merge "$REFERENCE" faceapi "$WORK/faceapi.json"
echo "wrote $REFERENCE"
