"""Caption → text LLM: a VLM describes the person in context, a text LLM picks the labels.

Stage 1 is the VLM recognizer with a caption prompt (same person views, frames, cache and
backends); stage 2, `LabelPicker`, is shared with NarraCap: the description goes into a
label-picking prompt for a text LLM, whose answer is parsed (generate) or whose per-label
probabilities are read (score, giving mAP).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from emovlm.backends.cache import ResponseCache
from emovlm.backends.cached import CachedVLM
from emovlm.backends.text_llm import build_text_llm
from emovlm.backends.vlm import GenerationSettings, VLMAnswer, VLMRequest
from emovlm.errors import InputError
from emovlm.labels import LabelSpace
from emovlm.prompts import PromptTemplate, load_prompt
from emovlm.recognizers.base import model_config
from emovlm.recognizers.settings import (
    CaptionLLMSettings,
    LocalSettings,
    PickerSettings,
    RequestSettings,
    Settings,
    VLMSettings,
    with_settings,
)
from emovlm.recognizers.vlm import AnswerReader, VLMRecognizer
from emovlm.types import Cost, Prediction, Sample, Status
from emovlm.vocab import load_definitions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Description:
    """Stage 1's text about one sample, or why there is none, with what it cost."""

    sample_id: str
    text: str = ""
    failure: str = ""
    status: Status = Status.FAILED
    cost: Cost = field(default_factory=Cost)
    extra: Mapping[str, Any] = field(default_factory=dict)


def template_digest(template: PromptTemplate) -> dict[str, str]:
    """A template's name and the SHA-256 of its text, for run configs."""
    return {"name": template.name, "sha256": hashlib.sha256(template.source.encode()).hexdigest()}


class LabelPicker:
    """Stage 2: a text LLM reads each description and names the labels (or scores every label).

    The prompt gets `description`, `labels`, `k`, `multi_label`, `dataset`, `definitions` (of the
    label space, from vocab/definitions.yaml) and `vad`. Answers are cached like VLM answers.
    """

    def __init__(self, label_space: LabelSpace, settings: PickerSettings) -> None:
        self.label_space = label_space
        self.backend_name, self.model = settings.llm_backend, settings.llm_model
        self.smoke_test = settings.smoke_test
        if self.smoke_test:
            logger.warning(
                "warning: the text LLM is %s, a base model for smoke tests: its labels are not "
                "meaningful; give --llm-model (an instruction-tuned model folder, .gguf or, with "
                "--llm-backend openai, a served model)",
                settings.llm_model,
            )
        self.llm = build_text_llm(
            settings.llm_backend,
            settings.llm_model,
            base_url=settings.llm_base_url,
            api_key_env=settings.llm_api_key_env,
            **settings.values_of(RequestSettings, LocalSettings),
        )
        self.cached = CachedVLM(
            self.llm, ResponseCache(settings.cache_dir) if settings.cache else None
        )
        self.template = load_prompt(settings.prompt)
        self.reader = AnswerReader(
            label_space, settings.mode, settings.match, settings.max_labels, settings.vad
        )
        self.settings = GenerationSettings(
            max_new_tokens=settings.max_new_tokens, temperature=settings.temperature
        )
        self.definitions = load_definitions(label_space.name)
        self.concurrency = settings.concurrency

    def config(self) -> dict[str, Any]:
        """What determines stage 2's answers (`smoke_test_only` when the model is the fallback)."""
        smoke = {"smoke_test_only": True} if self.smoke_test else {}
        return {
            **smoke,
            **model_config(self.backend_name, self.model, self.llm),
            "mode": self.reader.mode,
            "prompt": template_digest(self.template),
            "max_labels": self.reader.max_labels,
            "match": self.reader.match,
            "vad": self.reader.vad,
            "max_new_tokens": self.settings.max_new_tokens,
            "temperature": self.settings.temperature,
        }

    def request(self, description: str) -> VLMRequest:
        """The text LLM's question about one description."""
        space = self.label_space
        text = self.template.render(
            description=description,
            labels=list(space.labels),
            k=self.reader.max_labels,
            multi_label=space.multi_label,
            dataset=space.name,
            definitions=self.definitions,
            vad=self.reader.vad,
        )
        return VLMRequest((text,))

    def ask(self, requests: Sequence[VLMRequest]) -> list[VLMAnswer]:
        """The text LLM's answers in this picker's mode."""
        if not requests:
            return []
        if self.reader.mode == "score":
            return self.cached.score(requests, self.label_space.labels, self.settings)
        return self.cached.generate(requests, self.settings)

    def predictions(self, descriptions: Sequence[Description]) -> list[Prediction]:
        """One Prediction per description, in order; a missing description stays a failure."""
        described = [i for i, d in enumerate(descriptions) if d.text]
        answers = self.ask([self.request(descriptions[i].text) for i in described])
        answer_of = dict(zip(described, answers, strict=True))
        results = []
        for i, d in enumerate(descriptions):
            extra = {**d.extra, "description": d.text}
            if i not in answer_of:
                failed = Prediction(d.sample_id, status=d.status, reason=d.failure, cost=d.cost)
                results.append(replace(failed, extra=extra))
                continue
            answer = answer_of[i]
            results.append(
                self.reader.prediction(d.sample_id, answer, cost=d.cost + answer.cost, extra=extra)
            )
        return results


class Captioner(Protocol):
    """Stage 1 of a two-stage recognizer: a text about each sample."""

    def describe(self, samples: Sequence[Sample]) -> list[Description]:
        """One Description per sample, in order."""
        ...

    def config(self) -> dict[str, Any]:
        """What determines the texts."""
        ...


class TwoStageRecognizer:
    """A captioner writes a text about each sample (stage 1), a `LabelPicker` reads it (stage 2)."""

    name = ""

    def __init__(
        self, label_space: LabelSpace, spec: Settings, captioner: Captioner, picker: LabelPicker
    ) -> None:
        self.label_space, self.spec = label_space, spec
        self.captioner, self.picker = captioner, picker

    @property
    def batch_size(self) -> int:
        """Samples per `predict` call: enough to keep the text LLM's requests busy."""
        return max(32, 4 * self.picker.concurrency)

    def config(self) -> Mapping[str, Any]:
        """Both stages' settings."""
        return {
            "recognizer": self.name,
            "label_set": self.label_space.name,
            "captioner": self.captioner.config(),
            "picker": self.picker.config(),
            "settings": self.spec.recorded(),
        }

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """Describe every sample, then let the text LLM pick each one's labels."""
        return self.picker.predictions(self.captioner.describe(samples))


class VLMCaptioner:
    """Stage 1 of caption-llm: the VLM recognizer asked for a caption instead of labels."""

    def __init__(self, vlm: VLMRecognizer) -> None:
        self.vlm = vlm

    def config(self) -> dict[str, Any]:
        """The VLM's settings, less those of reading labels."""
        config = dict(self.vlm.config())
        for key in ("recognizer", "label_set", "mode", "match", "vad", "settings"):
            config.pop(key, None)
        return config

    def describe(self, samples: Sequence[Sample]) -> list[Description]:
        """The VLM's caption of each sample."""
        return [_described(p) for p in self.vlm.predict(samples)]


@with_settings(CaptionLLMSettings)
class CaptionLLMRecognizer(TwoStageRecognizer):
    """A VLM describes the person in context (stage 1), a text LLM picks the labels (stage 2).

    Stage 1 takes the VLM recognizer's settings (`backend`, `model`, `person`, `frames`, ...) with
    the caption prompt `caption_prompt` and `caption_tokens`; stage 2 takes the `llm_*` settings,
    `mode`, `prompt`, `max_labels`, `match`, `vad` and `max_new_tokens`. The caption is kept in
    each prediction's `extra["description"]`.
    """

    name = "caption-llm"

    def __init__(
        self, label_space: LabelSpace, settings: CaptionLLMSettings | None = None, **options: Any
    ) -> None:
        s = CaptionLLMSettings.of(settings, options)
        if not s.model:
            raise InputError(
                "--recognizer caption-llm needs --model: the VLM that writes the captions"
            )
        stage1 = s.pick(
            VLMSettings,
            prompt=s.caption_prompt,
            max_new_tokens=s.caption_tokens,
            mode="generate",
            match="word",
            vad=False,
        )
        captioner = VLMCaptioner(VLMRecognizer(label_space, stage1))
        super().__init__(
            label_space, s, captioner, LabelPicker(label_space, s.pick(PickerSettings))
        )

    @property
    def batch_size(self) -> int:
        """Samples per `predict` call: the captioner's."""
        return self.captioner.vlm.batch_size


def _described(caption: Prediction) -> Description:
    """Stage 1's prediction as a description: its raw text, unless it failed or was refused."""
    extra = {k: v for k, v in caption.extra.items() if k != "cached"}
    extra["caption_cached"] = caption.extra.get("cached", False)
    if caption.status is Status.FAILED:
        return Description(
            caption.sample_id,
            failure=f"captioning failed: {caption.reason}",
            cost=caption.cost,
            extra=extra,
        )
    if caption.reason.startswith("refused") or not caption.raw.strip():
        why = caption.reason or "empty caption"
        return Description(
            caption.sample_id,
            failure=f"no caption: {why}",
            status=Status.UNPARSED,
            cost=caption.cost,
            extra=extra,
        )
    return Description(caption.sample_id, caption.raw.strip(), cost=caption.cost, extra=extra)
