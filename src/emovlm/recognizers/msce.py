"""Multi-Stage Context Enrichment (MSCE): in-between frames described in text, then classified.

Stage 1 (motion to text): for each gap between neighbouring keyframes, a describer writes one
sentence about how the face moves (a VLM shown the gap's in-between frames, or the offline
specialist's per-frame trajectory worded deterministically). Stage 2: the keyframe images and
the sentences, interleaved in time order, go to a VLM in one prompt (`stage2="interleaved"`), or
the sentences alone go to the same model as text (`stage2="text"`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from emovlm.backends.cache import ResponseCache
from emovlm.backends.cached import CachedVLM
from emovlm.backends.settings import DEFAULT_TEXT_LLM
from emovlm.backends.vlm import VLMAnswer, VLMRequest
from emovlm.errors import InputError
from emovlm.frames import KeyframePlan, keyframes_with_gaps, uniform
from emovlm.labels import LabelSpace
from emovlm.prompts import PromptTemplate
from emovlm.recognizers.base import predict_in_chunks, prepare_each
from emovlm.recognizers.caption_llm import LabelPicker
from emovlm.recognizers.describers import (
    ClipWindows,
    Motion,
    MotionDescriber,
    SpecialistDescriber,
    VLMDescriber,
    Window,
)
from emovlm.recognizers.settings import (
    MSCESettings,
    PickerSettings,
    VLMSettings,
    flag,
    with_settings,
)
from emovlm.recognizers.vlm import AnswerReader, VLMRecognizer, build_backend
from emovlm.thumbnails import EXTRA_KEY as THUMBNAILS_KEY
from emovlm.thumbnails import thumbnail_entries
from emovlm.types import Cost, Frame, Prediction, Sample
from emovlm.video import probe, read_frames

T = TypeVar("T")
IMAGE_MARKER = "<<keyframe image>>"
"""What the stage-2 template's `image` variable holds; each occurrence becomes a keyframe image."""

Span = tuple[int | None, int | None, list[int]]
"""A window as (keyframe it starts at, keyframe it ends at, frames chosen inside); None = clip end."""


class _Answerer(Protocol):
    """Stage 2's model: the VLM recognizer, or the text LLM's label picker."""

    template: PromptTemplate
    reader: AnswerReader

    def ask(self, requests: Sequence[VLMRequest]) -> list[VLMAnswer]:
        """The model's answers in the recognizer's mode."""
        ...


@dataclass
class _Planned:
    """One sample's keyframes (as the model sees them) and its windows to describe."""

    sample: Sample
    plan: KeyframePlan
    keyframes: list[Frame]
    lead_in: Window | None
    gaps: list[Window]
    tail: Window | None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def windows(self) -> tuple[Window, ...]:
        """Every window in time order: lead-in, gaps, tail."""
        return (*_optional(self.lead_in), *self.gaps, *_optional(self.tail))


def _optional(item: T | None) -> list[T]:
    """The item as a 0- or 1-item list."""
    return [] if item is None else [item]


def _motion_steps(window: Window | None, text: str) -> list[dict[str, Any]]:
    """The template step of a window's sentence, or none when there is no window or no sentence."""
    if window is None or not text:
        return []
    return [{"kind": "motion", "start": window.start, "end": window.end, "text": text}]


@with_settings(MSCESettings)
class MSCERecognizer:
    """MSCE over a VLM: `keyframes` sparse frames, `per_gap` in-between frames described per gap.

    `describer="specialist"` words the offline expression model's trajectory over every frame;
    `describer="vlm"` asks a VLM (the stage-2 one unless `describer_backend`, `describer_model`
    or `describer_base_url` name another). `edges=True` also describes the frames before the
    first and after the last keyframe. The cost sums both stages; `extra` keeps each stage's
    cost, the plan, the windows and the sentences.
    """

    name = "msce"

    def __init__(
        self, label_space: LabelSpace, settings: MSCESettings | None = None, **options: Any
    ) -> None:
        self.spec = s = MSCESettings.of(settings, options)
        if label_space.multi_label:
            raise InputError(
                f"--recognizer msce answers one label per clip; {label_space.name} is multi-label"
            )
        llm = ("llm_backend", "llm_model", "llm_base_url")
        given = [flag(name) for name in llm if getattr(s, name) is not None]
        uses_llm = s.stage2 == "text" and (bool(given) or not s.model)
        if given and not uses_llm:
            raise InputError(f"{', '.join(given)} apply to --stage2 text only")
        if (s.stage2 == "interleaved" or s.describer == "vlm" or not uses_llm) and not s.model:
            raise InputError("--recognizer msce needs --model (a VLM folder, id or served name)")
        self.label_space = label_space
        self.keyframes, self.per_gap, self.edges = s.keyframes, s.per_gap, s.edges
        self.stage2, self.concurrency = s.stage2, s.concurrency
        prompt = s.prompt or "msce-classify"  # stage 2's prompt, whichever model answers
        frames = f"msce:{s.keyframes}x{s.per_gap}"
        stage2 = s.pick(VLMSettings, frames=frames, prompt=prompt)
        self.classifier = VLMRecognizer(label_space, stage2) if s.model else None
        self.picker = (
            LabelPicker(
                label_space,
                s.pick(
                    PickerSettings,
                    llm_backend=s.llm_backend or "transformers",
                    llm_model=s.llm_model or DEFAULT_TEXT_LLM,
                    prompt=prompt,
                ),
            )
            if uses_llm
            else None
        )
        self.answerer: _Answerer = self.picker or self.classifier  # type: ignore[assignment]
        self.describer = self._describer(label_space, s, stage2)
        self._check_template()

    def _describer(
        self, label_space: LabelSpace, s: MSCESettings, stage2: VLMSettings
    ) -> MotionDescriber:
        """Stage 1: the specialist's trajectory in words, or a VLM (stage 2's unless another)."""
        if s.describer == "specialist":
            given = {
                "--describer-backend": s.describer_backend,
                "--describer-base-url": s.describer_base_url,
                "--describer-prompt": s.describer_prompt,
            }
            wrong = [flag for flag, value in given.items() if value is not None]
            if wrong:
                raise InputError(f"{', '.join(wrong)} apply to --describer vlm only")
            return SpecialistDescriber(
                label_space,
                model=s.describer_model or "fer-xception",
                faces=s.faces,
                face_step=s.face_step,
                device=s.device,
            )
        assert self.classifier is not None and s.model is not None
        chosen = replace(
            stage2,
            backend=s.describer_backend or s.backend,
            model=s.describer_model or s.model,
            base_url=s.describer_base_url or s.base_url,
        )
        vlm = self.classifier.vlm
        if chosen != stage2:
            built = build_backend(replace(chosen, adapter=None, model_revision=None))
            vlm = CachedVLM(built, ResponseCache(s.cache_dir) if s.cache else None)
        return VLMDescriber(
            vlm,
            backend=chosen.backend,
            model=str(chosen.model),
            prompt=s.describer_prompt or "msce-describe",
            max_new_tokens=s.describer_max_new_tokens,
            temperature=s.temperature,
        )

    @property
    def batch_size(self) -> int:
        """Samples per `predict` call: the VLM recognizer's, else enough to keep a server busy."""
        return self.classifier.batch_size if self.classifier else max(32, 4 * self.concurrency)

    def config(self) -> Mapping[str, Any]:
        """The describer's and the stage-2 model's configs, and the settings (plan included)."""
        return {
            "recognizer": self.name,
            "label_set": self.label_space.name,
            "describer": dict(self.describer.config()),
            "classifier": dict(self.classifier.config()) if self.classifier else None,
            "text_llm": self.picker.config() if self.picker else None,
            "settings": self.spec.recorded(),
        }

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """One Prediction per sample, in order; per-sample problems become failed rows."""
        return predict_in_chunks(samples, self.batch_size, self._predict_chunk)

    def _predict_chunk(self, samples: Sequence[Sample]) -> list[Prediction]:
        results, planned = prepare_each(samples, self._plan)
        motions = self.describer.describe([ClipWindows(p.sample, p.windows) for _, p in planned])
        asking: list[tuple[int, _Planned, Motion]] = []
        for (i, item), motion in zip(planned, motions, strict=True):
            problem = self._problem(motion)
            if problem:
                cost = motion.cost + Cost(seconds=item.seconds)
                results[i] = Prediction.failed(item.sample.id, problem, cost)
            else:
                asking.append((i, item, motion))
        answers = self.answerer.ask([self.request(item, m.texts) for _, item, m in asking])
        for (i, item, motion), answer in zip(asking, answers, strict=True):
            classify = answer.cost + Cost(seconds=item.seconds)
            results[i] = self.answerer.reader.prediction(
                item.sample.id,
                answer,
                cost=motion.cost + classify,
                extra=self._extra(item, motion, classify),
            )
        return [results[i] for i in range(len(samples))]

    def _problem(self, motion: Motion) -> str:
        """Why stage 2 cannot run on this clip's stage-1 output ("" when it can)."""
        if motion.error:
            return f"stage 1 ({self.describer.name} describer): {motion.error}"
        if self.stage2 == "text" and not any(motion.texts):
            return (
                "nothing to describe: the clip has no frames between keyframes; the text variant "
                "needs a video longer than --keyframes frames (or --edges)"
            )
        return ""

    def _extra(self, item: _Planned, motion: Motion, classify: Cost) -> dict[str, Any]:
        """What a prediction keeps: plan, windows with their sentences, per-stage costs."""
        windows = [
            {"start": w.start, "end": w.end, "frames": [f.index for f in w.frames], "text": text}
            for w, text in zip(item.windows, motion.texts, strict=True)
        ]
        return {
            **item.extra,
            **motion.extra,
            "describer": self.describer.name,
            "stage2": self.stage2,
            "plan": {"keyframes": item.plan.keyframes, "gaps": item.plan.gaps},
            "windows": windows,
            "sentences": [text for text in motion.texts if text],
            "stage_costs": {"describe": asdict(motion.cost), "classify": asdict(classify)},
        }

    # ---- sample → plan ----------------------------------------------------------------------

    def _plan(self, sample: Sample) -> _Planned:
        """Read the keyframes (and, for the VLM describer, the window frames) of one sample."""
        started = time.perf_counter()
        info = probe(sample.media)
        plan = keyframes_with_gaps(info.frame_count, self.keyframes, self.per_gap)
        lead_in, gaps, tail = self._spans(plan, info.frame_count)
        spans = [*_optional(lead_in), *gaps, *_optional(tail)]
        shows_frames = self.describer.name == "vlm"
        wanted = set(plan.keyframes)
        if shows_frames:
            wanted.update(i for *_, inside in spans for i in inside)
        clip = read_frames(sample.media, sorted(wanted))
        if self.stage2 == "interleaved" or shows_frames:
            assert self.classifier is not None  # a VLM is built whenever images are shown
            images, extra = self.classifier.view(sample, clip)
        else:
            images, extra = [f.image for f in clip.frames], {"frames_sampled": len(clip.frames)}
        keyframes = set(plan.keyframes)
        extra[THUMBNAILS_KEY] = thumbnail_entries(
            [
                (f"keyframe {f.index} · {f.time:.2f} s", image)
                for f, image in zip(clip.frames, images, strict=True)
                if f.index in keyframes
            ]
        )
        seen = {
            f.index: Frame(image, f.time, f.index)
            for f, image in zip(clip.frames, images, strict=True)
        }

        def window(span: Span) -> Window:
            start, end, inside = span
            return Window(
                seen[start].time if start is not None else 0.0,
                seen[end].time if end is not None else clip.duration,
                tuple(seen[i] for i in inside) if shows_frames else (),
            )

        return _Planned(
            sample,
            plan,
            [seen[i] for i in plan.keyframes],
            window(lead_in) if lead_in else None,
            [window(span) for span in gaps],
            window(tail) if tail else None,
            time.perf_counter() - started,
            extra,
        )

    def _spans(
        self, plan: KeyframePlan, frame_count: int
    ) -> tuple[Span | None, list[Span], Span | None]:
        """The lead-in (with `edges`), the gaps between keyframes, and the tail (with `edges`)."""
        gaps: list[Span] = [
            (start, end, gap)
            for start, end, gap in zip(
                plan.keyframes[:-1], plan.keyframes[1:], plan.gaps, strict=True
            )
        ]
        if not self.edges:
            return None, gaps, None
        first, last = plan.keyframes[0], plan.keyframes[-1]
        after = frame_count - 1 - last
        lead_in = (None, first, self._evenly(first, 0)) if first > 0 else None
        tail = (last, None, self._evenly(after, last + 1)) if after > 0 else None
        return lead_in, gaps, tail

    def _evenly(self, count: int, offset: int) -> list[int]:
        """Up to `per_gap` evenly spaced frames of the `count` frames from `offset` on."""
        return [offset + i for i in uniform(count, self.per_gap)] if self.per_gap else []

    # ---- plan + sentences → stage-2 request -------------------------------------------------

    def request(self, item: _Planned, texts: Sequence[str]) -> VLMRequest:
        """Stage 2's one request: keyframe images and sentences in time order (or sentences only)."""
        interleaved = self.stage2 == "interleaved"
        texts = list(texts)
        lead_in_text = texts.pop(0) if item.lead_in else ""
        tail_text = texts.pop() if item.tail else ""
        steps = _motion_steps(item.lead_in, lead_in_text)
        for n, keyframe in enumerate(item.keyframes):
            if interleaved:
                steps.append({"kind": "keyframe", "time": keyframe.time})
            if n < len(item.gaps):
                steps += _motion_steps(item.gaps[n], texts[n])
        steps += _motion_steps(item.tail, tail_text)
        template = self.answerer.template
        text = template.render(
            labels=list(self.label_space.labels),
            dataset=self.label_space.name,
            steps=steps,
            image=IMAGE_MARKER if interleaved else "",
            num_keyframes=len(item.keyframes),
        )
        pieces = text.split(IMAGE_MARKER)
        shown = len(item.keyframes) if interleaved else 0
        if len(pieces) - 1 != shown:
            raise InputError(
                f"prompt {template.name!r} must show each of the {shown} keyframes once with "
                f"{{{{ image }}}} (it shows {len(pieces) - 1})"
            )
        parts: list[Any] = []
        for n, piece in enumerate(pieces):
            if n:
                parts.append(item.keyframes[n - 1].image)
            if piece.strip():
                parts.append(piece.strip())
        return VLMRequest(tuple(parts))

    def _check_template(self) -> None:
        """Refuse up front a stage-2 template that does not show each keyframe image once."""
        frames = [Frame(np.zeros((1, 1, 3), np.uint8), float(t), t) for t in (0, 1)]
        probe_item = _Planned(
            Sample("template check", Path(".")),
            KeyframePlan([0, 1], [[]]),
            frames,
            None,
            [Window(0.0, 1.0)],
            None,
        )
        self.request(probe_item, ("the face stays still.",))
