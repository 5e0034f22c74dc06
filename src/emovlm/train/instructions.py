"""Instruction samples for VLM fine-tuning: the question emovlm asks about a sample, and its gold answer.

A sample becomes exactly the request the `vlm` recognizer sends at evaluation (same frame
sampler, face crops or red person box, image size and prompt template), paired with the answer
the prompt asks for: the label for DFER prompts, the labels joined by ", " for EMOTIC's
"every emotion that applies" prompt. Training on the evaluation prompt means a LoRA adapter is
evaluated on the very question it learnt to answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emovlm.backends.images import crop_box, draw_box, fit_within
from emovlm.backends.vlm import VideoInput, VLMRequest
from emovlm.errors import InputError
from emovlm.faces.crop import crop_face
from emovlm.faces.registry import get_face_detector
from emovlm.faces.track import track_faces
from emovlm.frames import parse_sampler
from emovlm.labels import LabelSpace
from emovlm.prompts import load_prompt
from emovlm.train.settings import VLMSettings
from emovlm.types import Sample
from emovlm.video import probe, read_frames


@dataclass(frozen=True)
class View:
    """What the model is shown of one sample: its frames (processed), their rate, and the prompt.

    `altered` is True when the pixels differ from the source beyond resizing (face crops, a
    drawn or cropped person box), so an export must write them out instead of citing the file.
    """

    images: tuple[np.ndarray, ...]
    fps: float
    text: str
    altered: bool

    @property
    def is_video(self) -> bool:
        """True when the sample is shown as several frames."""
        return len(self.images) > 1

    def request(self) -> VLMRequest:
        """The VLM request: the image or the frames as a video, then the prompt text."""
        visual = VideoInput(self.images, fps=self.fps) if self.is_video else self.images[0]
        return VLMRequest((visual, self.text))


class ViewBuilder:
    """Turns samples into what the `vlm` recognizer shows a model, with the same settings and defaults."""

    def __init__(
        self, label_space: LabelSpace, settings: VLMSettings | None = None, **options: Any
    ) -> None:
        s = VLMSettings.of(settings, options)
        if s.person not in ("box", "crop"):
            raise InputError(f"person view {s.person!r} is unknown; choose box or crop")
        self.label_space = label_space
        self.sampler = parse_sampler(s.frames)
        self.faces, self.face_step = s.faces, s.face_step
        self.detector = get_face_detector(s.faces, device=s.device) if s.faces != "none" else None
        self.template = load_prompt(
            s.prompt or ("contextual" if label_space.multi_label else "dfer")
        )
        self.image_size, self.person, self.max_labels = s.image_size, s.person, s.max_labels

    def view(self, sample: Sample) -> View:
        """The frames and prompt of one sample; unreadable media raise MediaError."""
        info = probe(sample.media)
        indices = self.sampler.indices(info.frame_count, info.fps) if info.frame_count > 1 else [0]
        clip = read_frames(sample.media, indices)
        images = [frame.image for frame in clip.frames]
        altered = False
        if self.detector is not None:
            tracked = track_faces(images, self.detector, step=self.face_step, person_box=sample.box)
            images = [
                crop_face(img, f) if f is not None else img
                for img, f in zip(images, tracked, strict=True)
            ]
            altered = any(f is not None for f in tracked)
        elif sample.box is not None:
            show = draw_box if self.person == "box" else crop_box
            images = [show(img, sample.box) for img in images]
            altered = True
        images = [fit_within(img, self.image_size) for img in images]
        text = self.template.render(
            labels=list(self.label_space.labels),
            media="video" if len(images) > 1 else "image",
            num_frames=len(images),
            multi_label=self.label_space.multi_label,
            dataset=self.label_space.name,
            person=self.person if sample.box is not None and self.detector is None else None,
            k=self.max_labels,
        )
        rate = len(images) / clip.duration if clip.duration > 0 else clip.fps
        return View(tuple(images), rate, text, altered)


def answer_text(labels: Sequence[str], label_space: LabelSpace) -> str:
    """The gold answer as the prompt asks for it: one label, or the labels joined by ", "."""
    for label in labels:
        if label not in label_space:
            raise InputError(
                f"label {label!r} is not in label set {label_space.name!r} "
                f"({', '.join(label_space.labels)})"
            )
    if not labels:
        raise InputError("a training sample needs at least one gold label")
    return ", ".join(labels) if label_space.multi_label else labels[0]
