"""Run folders for the explorer's tests, written through the real store and report code."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emovlm.eval.tables import FrameTableWriter, frames_dir
from emovlm.labels import LabelSpace, get_label_space
from emovlm.run.config import record_config, resolve_config
from emovlm.run.runner import rebuild_report
from emovlm.run.store import RunStore
from emovlm.thumbnails import thumbnail_entries
from emovlm.types import FrameResults, Prediction, Status

DFEW = get_label_space("dfew")
SCRIPT_ANSWER = '<script>window.__pwned = 1</script><b id="injected">surprise</b> & <img src=x onerror="window.__pwned=2">'
"""A model answer holding markup; the explorer must show it as text."""

GOLD = {
    "s00": "happy", "s01": "sad", "s02": "angry", "s03": "fear", "s04": "surprise",
    "s05": "neutral", "s06": "disgust", "s07": "sad", "s08": "happy", "s09": "neutral",
    "s10": "sad", "s11": "fear",
}  # fmt: skip


def _ok(sample_id: str, label: str, raw: str | None = None, **extra) -> Prediction:
    return Prediction(sample_id, (label,), raw=raw or f"The person looks {label}.", extra=extra)


def _picture(seed: int) -> np.ndarray:
    """A 200×300 RGB test picture (a colour gradient), as a recognizer would have decoded."""
    y, x = np.mgrid[0:200, 0:300]
    return np.stack([(x + seed * 40) % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def _frames() -> FrameResults:
    """Per-frame results of a 4-frame video whose third frame has no face."""
    probs = np.zeros((4, len(DFEW)), dtype=np.float32)
    probs[:, DFEW.index("neutral")] = [0.9, 0.7, np.nan, 0.6]
    probs[:, DFEW.index("sad")] = [0.1, 0.3, np.nan, 0.4]
    box = np.tile(np.array([10, 10, 60, 60], dtype=np.float32), (4, 1))
    box[2] = np.nan
    return FrameResults(
        labels=DFEW.labels,
        index=np.array([0, 12, 24, 36]),
        time=np.array([0.0, 0.5, 1.0, 1.5]),
        probs=probs,
        box=box,
        track=np.array([0, 0, -1, 0], dtype=np.int32),
        main=np.array([True, True, False, True]),
    )


def reference_predictions() -> list[Prediction]:
    """Run A: a VLM-like run with a neutral sink, an out-of-set word and a markup answer."""
    motion = {
        "windows": [
            {"start": 0, "end": 5, "frames": [1, 3], "text": "the mouth corners drop"},
            {"start": 5, "end": 10, "frames": [6, 8], "text": "the eyes close slowly"},
        ],
        "thumbnails": thumbnail_entries([("keyframe 0", _picture(0)), ("keyframe 1", _picture(1))]),
    }
    trajectory = {
        "times": [0.0, 0.5, 1.0],
        "labels": list(DFEW.labels),
        "probs": [[0.8, 0, 0.2, 0, 0, 0, 0], [0.9, 0, 0.1, 0, 0, 0, 0], [1.0, 0, 0, 0, 0, 0, 0]],
    }
    return [
        _ok("s00", "happy", trajectory=trajectory),
        _ok("s01", "neutral", "Neutral: the face shows little.", **motion),
        _ok("s02", "angry"),
        Prediction("s03", ("pain",), raw="The person is in pain.", status=Status.OUT_OF_SET),
        Prediction("s04", ("surprise",), raw=SCRIPT_ANSWER),
        Prediction.failed("s05", "MediaError: clip s05.mp4 has no video stream"),
        Prediction("s06", (), raw="I cannot tell from this clip.", status=Status.UNPARSED),
        _ok("s07", "neutral"),
        _ok("s08", "happy"),
        dataclasses.replace(_ok("s09", "neutral"), frames=_frames()),
        Prediction("s10", ("pain",), raw="Pain, clearly.", status=Status.OUT_OF_SET),
        _ok("s11", "neutral"),
    ]


def other_predictions() -> list[Prediction]:
    """Run B: fixes s01, s03 and s07, breaks s02, changes s06 (unparsed → wrong label)."""
    answers = {
        "s00": "happy", "s01": "sad", "s02": "neutral", "s03": "fear", "s04": "surprise",
        "s05": "neutral", "s06": "angry", "s07": "sad", "s08": "happy", "s09": "neutral",
        "s10": "neutral", "s11": "neutral",
    }  # fmt: skip
    return [_ok(sample_id, label) for sample_id, label in answers.items()]


EMOTIC = get_label_space("emotic")


def emotic_predictions(
    n: int = 60, seed: int = 5
) -> tuple[list[Prediction], list[tuple[str, ...]]]:
    """A multi-label run: 1-3 gold categories per person, answers of 0-3 categories or odd ones."""
    rng = np.random.default_rng(seed)
    labels = EMOTIC.labels[:6]
    predictions, gold = [], []
    for i in range(n):
        gold.append(tuple(rng.choice(labels, rng.integers(1, 4), replace=False)))
        kind = i % 10
        if kind == 7:
            predictions.append(Prediction(f"p{i:03d}", ("serenity",), status=Status.OUT_OF_SET))
        elif kind == 8:
            predictions.append(Prediction(f"p{i:03d}", (), raw="?", status=Status.UNPARSED))
        elif kind == 9:
            predictions.append(Prediction.failed(f"p{i:03d}", "MediaError: no image"))
        else:
            answer = tuple(rng.choice(labels, rng.integers(1, 4), replace=False))
            predictions.append(Prediction(f"p{i:03d}", answer, raw=", ".join(answer)))
    return predictions, gold


def write_run(
    run_dir: Path,
    recognizer: str,
    predictions: Sequence[Prediction],
    *,
    n_bootstrap: int = 50,
    gold: Sequence[Sequence[str]] | None = None,
    space: LabelSpace = DFEW,
    dataset: dict | None = None,
) -> str:
    """Record a configuration, store its predictions, build its metrics; return its key."""
    config = resolve_config(
        dataset
        or {"name": "manifest", "root": "/data/test", "split": "test", "fold": None, "options": {}},
        recognizer,
        {"model": recognizer},
        space,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    key = record_config(run_dir, config)["key"]
    if gold is None:
        gold = [(GOLD[p.sample_id],) for p in predictions]
    with RunStore(run_dir) as store:
        store.write(key, predictions, gold)
    with FrameTableWriter(frames_dir(run_dir, key)) as tables:
        tables.add(predictions)
    rebuild_report(run_dir, config_key=key, n_bootstrap=n_bootstrap)
    return key
