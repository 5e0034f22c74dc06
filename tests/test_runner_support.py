"""A small real dataset and recognizer for the run tests; run as a script it evaluates slowly.

The recognizer reads the answer from the sample's media file name ("clip003_happy.mp4" → the
model "says" happy), so every answer is known in advance without any model.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emovlm.labels import LabelSpace, get_label_space
from emovlm.types import Cost, Prediction, Sample

DFEW = get_label_space("dfew")
ANSWERS = ("happy", "sad", "neutral", "angry", "pain", "surprise", "disgust", "fear")
"""What the model answers, in turn ("pain" is out of DFEW's label set)."""


def make_samples(n: int) -> list[Sample]:
    """`n` samples whose file names carry the answer; gold is the answer for 2 of every 3."""
    samples = []
    for i in range(n):
        answer = ANSWERS[i % len(ANSWERS)]
        gold = DFEW.labels[i % len(DFEW.labels)] if i % 3 == 2 or answer == "pain" else answer
        samples.append(
            Sample(id=f"clip{i:03d}", media=Path(f"/data/clip{i:03d}_{answer}.mp4"), labels=(gold,))
        )
    return samples


@dataclass
class ListDataset:
    """A dataset over a list of samples that counts how many it has handed out."""

    items: Sequence[Sample]
    name: str = "toy"
    label_space: LabelSpace = DFEW
    pulled: int = 0

    def __len__(self) -> int:
        """Number of samples (a runner may use it for the progress bar's total)."""
        return len(self.items)

    def samples(self) -> Iterator[Sample]:
        """Yield the samples in order."""
        for sample in self.items:
            self.pulled += 1
            yield sample


@dataclass
class EndlessDataset:
    """A dataset that never ends: only a streaming runner with a limit can finish on it."""

    name: str = "endless"
    label_space: LabelSpace = DFEW

    def samples(self) -> Iterator[Sample]:
        """Yield samples forever."""
        for i in itertools.count():
            yield Sample(id=f"s{i}", media=Path(f"/data/s{i}_happy.jpg"), labels=("happy",))


@dataclass
class FileNameRecognizer:
    """Answers with the word after the last '_' in the media file name; can fail on purpose.

    `fail_ids` raise RuntimeError whenever they are in a batch; `interrupt_at` raises
    KeyboardInterrupt (like Ctrl-C) when that sample comes; `kill_at` SIGKILLs the process
    predicting that sample; `delay` sleeps per call; `record_pid` adds the predicting process's
    id to each prediction's extra. `calls` records the sample ids of every predict call.
    """

    variant: str = "a"
    fail_ids: frozenset[str] = frozenset()
    interrupt_at: str | None = None
    kill_at: str | None = None
    delay: float = 0.0
    record_pid: bool = False
    name: str = "filename"
    label_space: LabelSpace = DFEW
    calls: list[list[str]] = field(default_factory=list)

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """One prediction per sample, parsed from a sentence that names the answer."""
        ids = [s.id for s in samples]
        self.calls.append(ids)
        time.sleep(self.delay)
        if self.interrupt_at in ids:
            raise KeyboardInterrupt
        if self.kill_at in ids:
            os.kill(os.getpid(), signal.SIGKILL)
        failing = self.fail_ids.intersection(ids)
        if failing:
            raise RuntimeError(f"model server hung up on {sorted(failing)[0]}")
        return [self._answer(s) for s in samples]

    def _answer(self, sample: Sample) -> Prediction:
        word = sample.media.stem.rsplit("_", 1)[1]
        raw = f"The person looks {word}. 表情 → {word}"
        parsed = self.label_space.parse(raw)
        extra: dict[str, object] = {"variant": self.variant}
        if sample.id.endswith("0"):  # every tenth sample carries a per-frame timeline
            extra["trajectory"] = _trajectory(word, self.label_space)
        if self.record_pid:
            extra["pid"] = os.getpid()
        return Prediction(
            sample_id=sample.id,
            labels=parsed.labels,
            scores={word: 0.75, "neutral": 0.25} if word != "neutral" else {"neutral": 1.0},
            raw=raw,
            status=parsed.status,
            cost=Cost(
                calls=1, input_tokens=100, visual_tokens=64 * 4, output_tokens=7, seconds=0.25
            ),
            extra=extra,
        )

    def config(self) -> dict[str, str]:
        """Only the variant changes answers; failures and delays are accidents of one run."""
        return {"variant": self.variant}


def _trajectory(word: str, space: LabelSpace) -> dict[str, list]:
    """A two-frame emotion timeline that ends on the answer (neutral when out of the set)."""
    end = [
        1.0 if label == (word if word in space else "neutral") else 0.0 for label in space.labels
    ]
    start = [1.0 / len(space)] * len(space)
    return {"times": [0.0, 0.5], "labels": list(space.labels), "probs": [start, end]}


COLOURS = {
    "angry": (200, 20, 20),
    "happy": (20, 200, 20),
    "sad": (20, 20, 200),
    "neutral": (110, 110, 110),
}
"""Solid colours and what tests/openai_server.py's default model answers for them."""


def write_colour_manifest(folder: Path, n: int) -> Path:
    """`n` small solid-colour PNGs (each a different shade) and manifest.csv; gold is the served
    answer for 3 of every 4."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    answers = list(COLOURS)
    rows = ["id,path,label"]
    for i in range(n):
        answer = answers[i % len(answers)]
        name = f"face{i:03d}.png"
        shade = tuple(c + i // len(answers) % 50 for c in COLOURS[answer])  # no two images alike
        Image.new("RGB", (24, 24), shade).save(folder / name)
        gold = answer if i % 4 else answers[(i + 1) % len(answers)]
        rows.append(f"s{i:03d},{name},{gold}")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return manifest


def served_eval_args(manifest: Path, base_url: str, run_dir: Path, *more: str) -> list[str]:
    """`emovlm eval` arguments for the VLM recognizer on a manifest, served at `base_url`."""
    return [
        "eval",
        "--dataset", "manifest",
        "--root", str(manifest),
        "--label-set", "dfew",
        "--recognizer", "vlm",
        "--backend", "openai",
        "--base-url", base_url,
        "--model", "tiny-vlm",
        "--frames", "uniform:1",
        "--concurrency", "2",
        "--batch-size", "4",
        "--bootstrap", "200",
        "--run-dir", str(run_dir),
        "--no-progress",
        *more,
    ]  # fmt: skip


def slow_run(run_dir: str, n: int, delay: float) -> None:
    """Evaluate `n` samples in batches of 2, sleeping `delay` per batch (to be killed mid-run)."""
    from emovlm.run.runner import evaluate

    evaluate(
        ListDataset(make_samples(n)),
        FileNameRecognizer(delay=delay),
        Path(run_dir),
        dataset_config={"root": "/data", "split": "test", "fold": 1},
        batch_size=2,
        progress=False,
        report=False,
    )


if __name__ == "__main__":
    slow_run(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
