"""Small datasets in the official layouts for `emovlm reproduce`, and a server-side kill switch.

DFEW clips are frame folders of one flat colour (the test server answers by colour); EMOTIC is
the per-split CSV export over flat-colour images. A KillSwitch SIGKILLs the CLI process from
inside the server when a counted request arrives, so the kill point is an event, not a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from openai_server import colour_answer

COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200), "grey": (128,) * 3}
PROBE_TEXT = "Reply with one word."
"""The backend's one-image test request (preflight); not part of any step's work."""

# (clip id, DFEW label number, colour): the server answers angry/happy/sad/neutral by colour.
DFEW_CLIPS = [
    ("00001", 1, "green"),  # happy, answered happy
    ("00002", 1, "green"),
    ("00003", 2, "blue"),  # sad, answered sad
    ("00004", 2, "grey"),  # sad, answered neutral (the sink)
    ("00005", 3, "grey"),  # neutral
    ("00006", 6, "red"),  # disgust, answered angry
]
FRAMES = 36  # MSCE's 8 keyframes and 4 frames in each of the 7 gaps


def dfew_root(root: Path) -> Path:
    """DFEW's release layout: EmoLabel_DataSplit/ split files and Clip/clip_224x224/ frame folders."""
    rows = ["video_name,label"] + [f"{int(clip)},{label}" for clip, label, _ in DFEW_CLIPS]
    for split in ("train", "test"):  # the same clips: only the fine-tuning step reads train
        folder = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)"
        folder.mkdir(parents=True)
        (folder / "set_1.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    for clip, _, colour in DFEW_CLIPS:
        folder = root / "Clip" / "clip_224x224" / clip
        folder.mkdir(parents=True)
        for index in range(1, FRAMES + 1):
            shade = np.array(COLOURS[colour]) * (0.85 + 0.15 * index / FRAMES)
            image = np.full((32, 32, 3), shade.astype(np.uint8), dtype=np.uint8)
            Image.fromarray(image).save(folder / f"{clip}_{index:05d}.jpg")
    return root


EMOTIC_LABELS = {
    "green": "Happiness, Engagement, Pleasure",
    "blue": "Sadness, Fatigue",
    "red": "Anger, Annoyance",
    "grey": "Peace",
}
EMOTIC_TRAIN = [
    ("green", ["Engagement", "Happiness", "Anticipation"]),
    ("green", ["Engagement", "Happiness", "Pleasure"]),
    ("blue", ["Engagement", "Sadness", "Confidence"]),
    ("grey", ["Engagement", "Peace"]),
    ("red", ["Anger", "Pleasure", "Confidence", "Anticipation"]),
]
EMOTIC_TEST = [
    ("green", ["Happiness", "Engagement"]),
    ("blue", ["Sadness", "Fatigue"]),
    ("red", ["Annoyance", "Anger", "Disapproval"]),
    ("grey", ["Peace", "Engagement"]),
    ("green", ["Pleasure", "Excitement"]),
]


def emotic_root(root: Path) -> Path:
    """EMOTIC's per-split CSV export (emotic_pre/{train,test}.csv) over flat-colour images."""
    images = root / "mscoco" / "images"
    images.mkdir(parents=True)
    (root / "emotic_pre").mkdir()
    header = (
        "Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age\n"
    )
    for split, rows in (("train", EMOTIC_TRAIN), ("test", EMOTIC_TEST)):
        lines = [header]
        for i, (colour, labels) in enumerate(rows):
            name = f"{split}_{i}.jpg"
            Image.new("RGB", (64, 48), COLOURS[colour]).save(images / name)
            lines.append(
                f'{i},mscoco/images,{name},"[64, 48]","[8, 6, 56, 42]","{labels}","[5, 5, 5]",'
                "Female,Adult\n"
            )
        (root / "emotic_pre" / f"{split}.csv").write_text("".join(lines), encoding="utf-8")
    return root


def emotic_answer(images: list[np.ndarray], text: str) -> str:
    """Images: the colour's EMOTIC labels and a colour tag; text only: labels of the tagged colour."""
    if images:
        word = colour_answer(images, text)
        colour = {"happy": "green", "sad": "blue", "angry": "red"}.get(word, "grey")
        return f"colour={colour}: {EMOTIC_LABELS[colour]}"
    tag = re.search(r"colour=(\w+)", text)
    return EMOTIC_LABELS[tag.group(1)] if tag else "Peace, Engagement"


def request_key(received: dict[str, Any]) -> str:
    """What a request asked: its settings (model, mode, lengths), prompt text and pixels, hashed."""
    settings = {k: v for k, v in received["body"].items() if k != "messages"}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(received["text"].encode())
    for image in received["images"]:
        digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def work(received: list[dict[str, Any]]) -> Counter[str]:
    """The requests of a run that asked for work (every request but the backend's preflight)."""
    return Counter(request_key(r) for r in received if r["text"] != PROBE_TEXT)


class KillSwitch:
    """Wraps a server answer rule; SIGKILLs `pid` at the `nth` request after `marker` exists."""

    def __init__(self, answer: Callable[[list[np.ndarray], str], str], marker: Path, nth: int):
        self.answer = answer
        self.marker = marker
        self.nth = nth
        self.pid: int | None = None
        self.counted = 0
        self.fired = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, images: list[np.ndarray], text: str) -> str:
        with self._lock:
            if self.pid is not None and not self.fired.is_set() and self.marker.exists():
                self.counted += 1
                if self.counted >= self.nth:
                    os.kill(self.pid, signal.SIGKILL)
                    self.fired.set()
        return self.answer(images, text)


def emovlm_command(*args: str | Path) -> list[str]:
    """The real CLI as a subprocess command line."""
    return [sys.executable, "-m", "emovlm", *map(str, args)]


def run_cli(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real CLI to the end."""
    return subprocess.run(
        emovlm_command(*args), capture_output=True, text=True, timeout=timeout, check=False
    )


def run_until_killed(switch: KillSwitch, *args: str | Path, timeout: float = 600) -> int:
    """Start the CLI, let the kill switch SIGKILL it mid-way, return its exit status."""
    process = subprocess.Popen(
        emovlm_command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    switch.pid = process.pid
    _, stderr = process.communicate(timeout=timeout)
    assert switch.fired.is_set(), f"the run ended before the kill point: {stderr[-2000:]}"
    return process.returncode
