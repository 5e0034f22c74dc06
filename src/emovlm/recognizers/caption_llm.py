"""Caption → text LLM: a VLM describes the person in context, a text LLM picks the labels.

Stage 1 is the VLM recognizer with a caption prompt (same person views, frames, cache and
backends); stage 2, `LabelPicker`, is shared with NarraCap: the description goes into a
label-picking prompt for a text LLM, whose answer is parsed (generate) or whose per-label
probabilities are read (score, giving mAP).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from emovlm.backends.cached import CachedVLM
from emovlm.backends.text_llm import DEFAULT_TEXT_LLM, build_text_llm
from emovlm.backends.vlm import GenerationSettings, VLMAnswer, VLMRequest
from emovlm.errors import InputError
from emovlm.labels import LabelSpace, MatchMode
from emovlm.prompts import PromptTemplate, load_prompt
from emovlm.recognizers.vlm import MATCH_MODES, MODES, AnswerReader, PersonView, VLMRecognizer
from emovlm.run.cache import ResponseCache
from emovlm.types import Cost, Prediction, Sample, Status
from emovlm.vocab import load_definitions


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

    def __init__(
        self,
        label_space: LabelSpace,
        *,
        backend: str = "transformers",
        model: str = DEFAULT_TEXT_LLM,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        mode: str = "generate",
        prompt: str = "pick-labels",
        max_labels: int = 6,
        match: MatchMode = "word",
        vad: bool = False,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        concurrency: int = 8,
        device: str = "cpu",
        dtype: str = "float32",
        cache: bool = True,
        cache_dir: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
    ) -> None:
        if mode not in MODES:
            raise InputError(f"--mode {mode!r} is unknown; choose one of: {', '.join(MODES)}")
        if match not in MATCH_MODES:
            raise InputError(f"--match {match!r} is unknown; choose word or contains")
        if max_labels < 1 or max_new_tokens < 1 or temperature < 0:
            raise InputError("--max-labels and --max-new-tokens must be ≥ 1, --temperature ≥ 0")
        self.label_space = label_space
        self.backend_name, self.model = backend, model
        self.llm = build_text_llm(
            backend,
            model,
            base_url=base_url,
            api_key_env=api_key_env,
            concurrency=concurrency,
            device=device,
            dtype=dtype,
            timeout=timeout,
            max_retries=max_retries,
        )
        self.cached = CachedVLM(self.llm, ResponseCache(cache_dir) if cache else None)
        self.template = load_prompt(prompt)
        self.reader = AnswerReader(label_space, mode, match, max_labels, vad)  # type: ignore[arg-type]
        self.settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature)
        self.definitions = load_definitions(label_space.name)

    def config(self) -> dict[str, Any]:
        """What determines stage 2's answers."""
        return {
            "backend": self.backend_name,
            "model": self.model,
            "model_fingerprint": dict(self.llm.fingerprint()),
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


class CaptionLLMRecognizer:
    """A VLM describes the person in context (stage 1), a text LLM picks the labels (stage 2).

    Stage 1 takes the VLM recognizer's settings (`backend`, `model`, `person`, `frames`, ...) with
    the caption prompt `caption_prompt` and `caption_tokens`; stage 2 takes the `llm_*` settings,
    `mode`, `prompt`, `max_labels`, `match`, `vad` and `max_new_tokens`. The caption is kept in
    each prediction's `extra["description"]`.
    """

    name = "caption-llm"

    def __init__(
        self,
        label_space: LabelSpace,
        *,
        backend: str = "transformers",
        model: str | None = None,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        frames: str = "uniform:8",
        person: PersonView = "box",
        image_size: int = 448,
        adapter: str | None = None,
        caption_prompt: str = "caption",
        caption_tokens: int = 96,
        llm_backend: str = "transformers",
        llm_model: str = DEFAULT_TEXT_LLM,
        llm_base_url: str | None = None,
        llm_api_key_env: str = "OPENAI_API_KEY",
        mode: str = "generate",
        prompt: str = "pick-labels",
        max_labels: int = 6,
        match: MatchMode = "word",
        vad: bool = False,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        concurrency: int = 8,
        device: str = "cpu",
        dtype: str = "float32",
        cache: bool = True,
        cache_dir: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
    ) -> None:
        if not model:
            raise InputError(
                "--recognizer caption-llm needs --model: the VLM that writes the captions"
            )
        self.label_space = label_space
        self.captioner = VLMRecognizer(
            label_space,
            backend=backend,
            model=model,
            base_url=base_url,
            api_key_env=api_key_env,
            frames=frames,
            prompt=caption_prompt,
            max_new_tokens=caption_tokens,
            temperature=temperature,
            image_size=image_size,
            adapter=adapter,
            device=device,
            dtype=dtype,
            concurrency=concurrency,
            cache=cache,
            cache_dir=cache_dir,
            timeout=timeout,
            max_retries=max_retries,
            person=person,
            max_labels=max_labels,
        )
        self.picker = LabelPicker(
            label_space,
            backend=llm_backend,
            model=llm_model,
            base_url=llm_base_url,
            api_key_env=llm_api_key_env,
            mode=mode,
            prompt=prompt,
            max_labels=max_labels,
            match=match,
            vad=vad,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            concurrency=concurrency,
            device=device,
            dtype=dtype,
            cache=cache,
            cache_dir=cache_dir,
            timeout=timeout,
            max_retries=max_retries,
        )

    @property
    def batch_size(self) -> int:
        """Samples per `predict` call: the captioner's."""
        return self.captioner.batch_size

    def config(self) -> Mapping[str, Any]:
        """Both stages' settings."""
        captioner = dict(self.captioner.config())
        for key in ("recognizer", "label_set", "mode", "match", "vad"):
            captioner.pop(key, None)
        return {
            "recognizer": self.name,
            "label_set": self.label_space.name,
            "captioner": captioner,
            "picker": self.picker.config(),
        }

    def predict(self, samples: Sequence[Sample]) -> list[Prediction]:
        """Caption every sample with the VLM, then let the text LLM pick each one's labels."""
        return self.picker.predictions([_described(p) for p in self.captioner.predict(samples)])


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
