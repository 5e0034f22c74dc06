#!/usr/bin/env bash
# Runs emovlm's VLM tests against the newest transformers and peft the package index offers, in a
# separate venv, so a coming release's breaking change shows before it reaches .venv.
#
#   bash scripts/newest_transformers.sh                  # venv at ${NEWEST_VENV:-/tmp/newest-transformers}
#   NEWEST_VENV=~/venvs/tf-next bash scripts/newest_transformers.sh tests/test_vlm_transformers.py
#
# torch and torchvision are pinned to the releases on this machine's disk (torch==2.14.1,
# torchvision==0.29.1); transformers, peft and accelerate are upgraded to their newest releases.
# Arguments replace the default list of test files.
set -euo pipefail

cd "$(dirname "$0")/.."
NEWEST_VENV=${NEWEST_VENV:-/tmp/newest-transformers}
PYTHON=${PYTHON:-python3}
TESTS=("$@")
if [ ${#TESTS[@]} -eq 0 ]; then
    TESTS=(tests/test_vlm_transformers.py tests/test_vlm_recognizer.py tests/test_vlm_cli.py
        tests/test_visual_tokens.py tests/test_text_llm.py tests/test_caption_llm.py
        tests/test_narracap.py tests/test_msce.py tests/test_train_lora.py tests/test_finetune_cli.py)
fi

"$PYTHON" -m venv "$NEWEST_VENV"
pip=("$NEWEST_VENV/bin/python" -m pip install --quiet)
"${pip[@]}" "torch==2.14.1" "torchvision==0.29.1"
"${pip[@]}" -e '.[vlm,clip,dev]' "torch==2.14.1" "torchvision==0.29.1"
"${pip[@]}" --upgrade --upgrade-strategy only-if-needed transformers peft accelerate \
    "torch==2.14.1" "torchvision==0.29.1"
"$NEWEST_VENV/bin/python" - <<'PY'
import peft, torch, transformers  # noqa: E401
print(f"transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}")
PY
"$NEWEST_VENV/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
