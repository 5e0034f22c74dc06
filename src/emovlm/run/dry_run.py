"""What a run would send to its model, counted without a model call: `emovlm eval --dry-run`.

Each sample's media is probed (metadata and the first frame only); the recognizer's sampler,
image size and frames-as setting give the frames, images or videos and sizes of each request.
Visual tokens follow the family rules of `backends.visual_tokens` when the model's name names a
family, else `request_tokens.DEFAULT_IMAGE_TOKENS` per image or frame; text tokens are the
rendered prompt at four characters a token. Person crops are counted at the full frame's size
(an upper bound). MSCE's stage-2 sentences are counted at the describer's token limit each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from emovlm.backends.request_tokens import Visual, family_of, text_tokens, visual_tokens
from emovlm.backends.visual_tokens import Family, fitted
from emovlm.errors import InputError, MediaError
from emovlm.frames import keyframes_with_gaps
from emovlm.recognizers.msce import MSCERecognizer
from emovlm.recognizers.vlm import VLMRecognizer
from emovlm.types import Sample
from emovlm.video import MediaInfo, probe


@dataclass
class RequestPlan:
    """Totals over a run's samples: requests, visual inputs and estimated tokens."""

    family: str
    as_video: bool
    samples: int = 0
    requests: int = 0
    images: int = 0
    videos: int = 0
    video_frames: int = 0
    video_seconds: float = 0.0
    visual_tokens: int = 0
    text_tokens: int = 0
    max_output_tokens: int = 0
    unreadable: list[str] = field(default_factory=list)

    def add_visual(self, family: Family | None, visual: Visual, seconds: float) -> None:
        """Count one visual part: its frames as a video (of `seconds`) or as images."""
        self.visual_tokens += visual_tokens(family, visual)
        if visual.as_video:
            self.videos += 1
            self.video_frames += visual.frames
            self.video_seconds += seconds
        else:
            self.images += visual.frames


def plan_run(recognizer: Any, samples: Iterable[Sample]) -> RequestPlan:
    """Count what `recognizer` would send for `samples` (vlm, contextual-vlm and msce)."""
    if isinstance(recognizer, MSCERecognizer):
        return _plan_msce(recognizer, samples)
    if isinstance(recognizer, VLMRecognizer):
        return _plan_vlm(recognizer, samples)
    raise InputError(
        f"--dry-run counts the requests of vlm, contextual-vlm and msce; not of {recognizer.name}"
    )


def _family(vlm: VLMRecognizer) -> Family | None:
    return getattr(vlm.backend, "family", None) or family_of(vlm.model)


def _sends_video(vlm: VLMRecognizer) -> bool:
    """Whether clips go as videos: openai with --frames-as video or auto (counted as video: the
    server is not asked in a dry run); local models as their processor takes them."""
    frames_as = getattr(vlm.backend, "frames_as", "auto")
    return frames_as != "images"


def _new_plan(vlm: VLMRecognizer) -> RequestPlan:
    family = _family(vlm)
    return RequestPlan(family.name if family else "unknown", _sends_video(vlm))


def _probe(sample: Sample, plan: RequestPlan) -> MediaInfo | None:
    try:
        return probe(sample.media)
    except MediaError as exc:
        plan.unreadable.append(f"{sample.id}: {exc}")
        return None


def _plan_vlm(vlm: VLMRecognizer, samples: Iterable[Sample]) -> RequestPlan:
    plan, family = _new_plan(vlm), _family(vlm)
    for sample in samples:
        plan.samples += 1
        info = _probe(sample, plan)
        if info is None:
            continue
        frames = len(vlm.sampler.indices(info.frame_count, info.fps)) if info.frame_count > 1 else 1
        height, width = fitted(info.height, info.width, vlm.image_size)
        visual = Visual(frames, height, width, plan.as_video and frames > 1)
        parts = 2 if vlm.person == "crop+full" and sample.box is not None else 1
        for _ in range(parts):
            plan.add_visual(family, visual, info.duration)
        plan.requests += 1
        plan.text_tokens += text_tokens(vlm.question(sample, frames))
        plan.max_output_tokens += vlm.settings.max_new_tokens
    return plan


def _plan_msce(msce: MSCERecognizer, samples: Iterable[Sample]) -> RequestPlan:
    vlm = msce.classifier
    plan = _new_plan(vlm) if vlm else RequestPlan("none", False)
    family = _family(vlm) if vlm else None
    describer = getattr(msce.describer, "template", None)
    sentence = getattr(msce.describer, "settings", None)
    sentence_tokens = sentence.max_new_tokens if sentence is not None else 48
    stage2_prompt = text_tokens(msce.answerer.template.source)
    for sample in samples:
        plan.samples += 1
        info = _probe(sample, plan)
        if info is None:
            continue
        keys = keyframes_with_gaps(info.frame_count, msce.keyframes, msce.per_gap)
        lead_in, gaps, tail = msce._spans(keys, info.frame_count)
        spans = [span for span in (lead_in, *gaps, tail) if span is not None]
        height, width = fitted(info.height, info.width, vlm.image_size if vlm else None)
        if describer is not None:  # the VLM describer: one call per span with frames
            for _, _, inside in spans:
                if inside:
                    seconds = len(inside) / info.fps if info.fps else 0.0
                    visual = Visual(len(inside), height, width, plan.as_video and len(inside) > 1)
                    plan.add_visual(family, visual, seconds)
                    plan.requests += 1
                    plan.text_tokens += text_tokens(describer.source)
                    plan.max_output_tokens += sentence_tokens
        if msce.stage2 == "interleaved":
            plan.add_visual(family, Visual(len(keys.keyframes), height, width, False), 0.0)
        plan.requests += 1
        plan.text_tokens += stage2_prompt + sentence_tokens * len(spans)
        plan.max_output_tokens += msce.answerer.settings.max_new_tokens
    return plan
