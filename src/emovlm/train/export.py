"""Export instruction data as JSONL for external trainers: LLaVA-style and ShareGPT-style (LLaMA-Factory).

Each sample becomes the question emovlm asks about it (see `instructions.py`) and its gold
answer. Media are cited by absolute path: the source file when the model sees it unchanged
(apart from resizing, which trainers do themselves), else a file written under `media/` that
holds what the model sees (an image with the red person box, face crops as a short video).

- `llava.jsonl`: {"id", "image" | "video", "conversations": [{"from": "human", "value":
  "<image>\\n…"}, {"from": "gpt", "value": answer}]}, the LLaVA / LLaVA-NeXT training format
  (one `<image>` placeholder, also for videos, as LLaVA-NeXT-Video does).
- `sharegpt.jsonl`: {"messages": [{"role": "user", "content": "<image>…" | "<video>…"},
  {"role": "assistant", "content": answer}], "images": [path] | "videos": [path]}, LLaMA-Factory's
  multimodal sharegpt format, registered in the `dataset_info.json` written beside it.

For videos the prompt states how many frames emovlm samples (e.g. 8); give the external trainer
the same frame count (LLaMA-Factory: `video_maxlen`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from emovlm.errors import InputError, MediaError
from emovlm.run.progress import EvalProgress
from emovlm.train.instructions import View, ViewBuilder, answer_text
from emovlm.types import Sample, Status
from emovlm.video import IMAGE_SUFFIXES

EXPORT_FORMATS: tuple[str, ...] = ("llava", "sharegpt")
"""JSONL formats users pass to --format."""
DATASET_NAME = "emovlm_instructions"
"""The name under which `dataset_info.json` registers the ShareGPT file for LLaMA-Factory."""


@dataclass
class ExportResult:
    """The files written, how many records each holds, and the samples that could not be read."""

    files: dict[str, Path] = field(default_factory=dict)
    n_records: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def llava_record(sample_id: str, view: View, media: Path, answer: str) -> dict[str, Any]:
    """One LLaVA-style record: id, image or video path, and a human/gpt conversation."""
    return {
        "id": sample_id,
        ("video" if view.is_video else "image"): str(media),
        "conversations": [
            {"from": "human", "value": f"<image>\n{view.text}"},
            {"from": "gpt", "value": answer},
        ],
    }


def sharegpt_record(view: View, media: Path, answer: str) -> dict[str, Any]:
    """One ShareGPT-style record as LLaMA-Factory reads it: user/assistant messages and media paths."""
    token, column = ("<video>", "videos") if view.is_video else ("<image>", "images")
    return {
        "messages": [
            {"role": "user", "content": f"{token}{view.text}"},
            {"role": "assistant", "content": answer},
        ],
        column: [str(media)],
    }


def llama_factory_entry(file_name: str) -> dict[str, Any]:
    """The `dataset_info.json` entry that registers a ShareGPT JSONL file with LLaMA-Factory."""
    return {
        DATASET_NAME: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images", "videos": "videos"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
            },
        }
    }


def export_instructions(
    samples: Sequence[Sample],
    builder: ViewBuilder,
    out_dir: Path,
    *,
    formats: Sequence[str] = EXPORT_FORMATS,
    progress: bool = False,
) -> ExportResult:
    """Write the samples' instruction data in each format to `out_dir`; unreadable samples are skipped."""
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise InputError(
            f"unknown export format(s) {', '.join(unknown) or '(none)'}; "
            f"choose from: {', '.join(EXPORT_FORMATS)}"
        )
    for sample in samples:
        answer_text(sample.labels, builder.label_space)  # refuse bad labels before writing
    out_dir = Path(out_dir).expanduser().resolve()
    media_dir = out_dir / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult()
    records: dict[str, list[dict[str, Any]]] = {f: [] for f in formats}
    with EvalProgress("export", len(samples), 0, progress) as bar:
        for index, sample in enumerate(samples):
            try:
                view = builder.view(sample)
            except MediaError as exc:
                result.failed[sample.id] = str(exc)
                bar.advance([Status.FAILED])
                continue
            media = _media_file(sample, view, media_dir / f"{index:06d}")
            answer = answer_text(sample.labels, builder.label_space)
            if "llava" in records:
                records["llava"].append(llava_record(sample.id, view, media, answer))
            if "sharegpt" in records:
                records["sharegpt"].append(sharegpt_record(view, media, answer))
            bar.advance([Status.OK])
    for name, rows in records.items():
        path = out_dir / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        result.files[name] = path
    if "sharegpt" in records:
        info = out_dir / "dataset_info.json"
        info.write_text(json.dumps(llama_factory_entry("sharegpt.jsonl"), indent=2) + "\n")
        result.files["dataset_info"] = info
    result.n_records = len(samples) - len(result.failed)
    return result


def _media_file(sample: Sample, view: View, stem: Path) -> Path:
    """The source file when it shows what the model sees, else a written image or video."""
    source = Path(sample.media).resolve()
    same_kind = source.is_file() and (source.suffix.lower() in IMAGE_SUFFIXES) != view.is_video
    if same_kind and not view.altered:
        return source
    if view.is_video:
        return _write_video(view.images, view.fps, stem.with_suffix(".mp4"))
    path = stem.with_suffix(".jpg")
    Image.fromarray(view.images[0]).convert("RGB").save(path, quality=95)
    return path


def _write_video(images: Sequence[np.ndarray], fps: float, path: Path) -> Path:
    """Encode frames (resized to the first one's even-sized shape) as an MPEG-4 video file."""
    height, width = (d - d % 2 for d in images[0].shape[:2])
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.mp4")
    with av.open(str(temporary), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in images:
            resized = np.asarray(Image.fromarray(image).resize((width, height)))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(resized, format="rgb24")))
        container.mux(stream.encode())
    os.replace(temporary, path)
    return path
