"""Cut the reference face crops for the original runtimes, and merge their answers into the file.

Run with emovlm's own Python (it resolves the photos through emovlm's asset cache):

    python scripts/reference/reference_io.py crops REFERENCE.json OUT_DIR
    python scripts/reference/reference_io.py merge REFERENCE.json MODEL ANSWER.json

`crops` writes each face as raw RGB bytes (OUT_DIR/NAME.rgb, row-major HxWx3 uint8) and
OUT_DIR/crops.json ({name: [height, width]}), so neither runtime needs an image decoder.
`merge` puts {"runtime", "probabilities"} from ANSWER.json under models.MODEL of the reference
file, written in the file's own layout (lists of numbers on one line).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from emovlm.assets import asset_path


def cut_crops(reference: Path, out: Path) -> None:
    """Write every reference face crop (asset image[y1:y2, x1:x2], RGB via Pillow) to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, face in json.loads(reference.read_text())["faces"].items():
        x1, y1, x2, y2 = face["box"]
        image = np.asarray(Image.open(asset_path(face["asset"])).convert("RGB"))
        crop = np.ascontiguousarray(image[y1:y2, x1:x2])
        (out / f"{name}.rgb").write_bytes(crop.tobytes())
        sizes[name] = list(crop.shape[:2])
    (out / "crops.json").write_text(json.dumps(sizes, indent=1) + "\n")


def layout(data: dict) -> str:
    """JSON with one-space indents and each list of scalars on one line (the file's layout)."""
    text = json.dumps(data, indent=1, ensure_ascii=False)
    return re.sub(
        r"\[\s*([^\[\]{}]*?)\s*\]",
        lambda m: "[" + ", ".join(part.strip() for part in m.group(1).split(",")) + "]",
        text,
    )


def merge(reference: Path, model: str, answer: Path) -> None:
    """Store one runtime's answer under models.`model`, keeping the faces' order."""
    data = json.loads(reference.read_text())
    got = json.loads(answer.read_text())
    missing = set(data["faces"]) - set(got["probabilities"])
    if missing:
        sys.exit(f"{answer}: no probabilities for {sorted(missing)}")
    probabilities = {name: got["probabilities"][name] for name in data["faces"]}
    data["models"][model] = {"runtime": got["runtime"], "probabilities": probabilities}
    reference.write_text(layout(data) + "\n")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "crops":
        cut_crops(Path(args[0]), Path(args[1]))
    elif command == "merge":
        merge(Path(args[0]), args[1], Path(args[2]))
    else:
        sys.exit(f"unknown command {command!r}: use crops or merge")
