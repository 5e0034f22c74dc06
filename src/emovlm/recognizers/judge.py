"""The answer judge: a text LLM re-reads answers the rules could not settle, beside the rules' reading.

`--extract rules` reads answers with the rules alone (emovlm.answers). `rules+judge` asks the
judge only about answers the rules leave ambiguous (single-label: several labels and no answer
cue) or unparsed, and uses its reading for them; `judge` asks it about every answer and uses its reading
throughout. The judge's reply is constrained by the prompt (prompts/judge-answer.j2: labels from
the list, the out-of-set word, or "none") and read back with the rules. Its decisions are cached
with the response cache, and every judged prediction keeps both readings: the rules' in
`extra["parse"]`, the judge's in `extra["judge"]` ({labels, status, reply, agrees, used}).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from emovlm.backends.cache import ResponseCache
from emovlm.backends.cached import CachedVLM
from emovlm.backends.text_llm import build_text_llm
from emovlm.backends.vlm import GenerationSettings, VLMRequest
from emovlm.labels import Extract, LabelSpace
from emovlm.prompts import load_prompt
from emovlm.recognizers.base import model_config
from emovlm.recognizers.settings import JudgeSettings, LocalSettings, RequestSettings, with_settings
from emovlm.types import Prediction, Status

JUDGE_PROMPT = "judge-answer"


@with_settings(JudgeSettings)
class AnswerJudge:
    """A text LLM (local transformers/GGUF or an OpenAI-compatible server) that re-reads answers."""

    def __init__(
        self, label_space: LabelSpace, settings: JudgeSettings | None = None, **options: Any
    ) -> None:
        s = JudgeSettings.of(settings, options)
        self.label_space = label_space
        self.extract: Extract = s.extract
        self.backend_name, self.model = s.backend, s.model
        self.llm = build_text_llm(
            s.backend,
            s.model,
            base_url=s.base_url,
            api_key_env=s.api_key_env,
            **s.values_of(RequestSettings, LocalSettings),
        )
        self.cached = CachedVLM(self.llm, ResponseCache(s.cache_dir) if s.cache else None)
        self.template = load_prompt(JUDGE_PROMPT)
        self.settings = GenerationSettings(max_new_tokens=s.max_new_tokens, temperature=0.0)

    def config(self) -> dict[str, Any]:
        """What determines the judge's readings (for run configs and reports)."""
        return {
            "extract": self.extract,
            **model_config(self.backend_name, self.model, self.llm),
            "prompt": JUDGE_PROMPT,
            "max_new_tokens": self.settings.max_new_tokens,
        }

    def request(self, answer: str) -> VLMRequest:
        """The judge's question about one answer."""
        text = self.template.render(
            answer=answer,
            labels=list(self.label_space.labels),
            multi_label=self.label_space.multi_label,
        )
        return VLMRequest((text,))

    def wants(self, prediction: Prediction) -> bool:
        """Whether this prediction goes to the judge under the extract mode."""
        status = Status(prediction.status)
        if status is Status.FAILED or not prediction.raw.strip():
            return False
        if self.extract == "judge":
            return True
        reading = (prediction.extra or {}).get("parse") or {}
        several = (
            not self.label_space.multi_label
            and int(reading.get("n_labels", 0)) > 1
            and reading.get("cue") == "first"
        )
        return status is Status.UNPARSED or several

    def review(self, predictions: Sequence[Prediction]) -> list[Prediction]:
        """The predictions with the judge's reading added (and used) where the mode asks for it."""
        asked = [i for i, p in enumerate(predictions) if self.wants(p)]
        answers = self.cached.generate(
            [self.request(predictions[i].raw) for i in asked], self.settings
        )
        out = list(predictions)
        for i, answer in zip(asked, answers, strict=True):
            out[i] = self._judged(predictions[i], answer.text, answer.error, answer.cached)
        return out

    def _judged(self, prediction: Prediction, reply: str, error: str, cached: bool) -> Prediction:
        extra = dict(prediction.extra or {})
        if error:  # the rules' reading stands; the answer is never lost
            extra["judge"] = {"error": error, "agrees": False, "used": False}
            return replace(prediction, extra=extra)
        reading = self.label_space.parse(reply)
        agrees = _same_reading(prediction, reading.labels, reading.status, self.label_space)
        extra["judge"] = {
            "labels": list(reading.labels),
            "status": reading.status.value,
            "reply": reply.strip()[:200],
            "agrees": agrees,
            "used": not agrees,
            "cached": cached,
        }
        if agrees:
            return replace(prediction, extra=extra)
        reason = "" if reading.status is Status.OK else f"judge: {reply.strip()[:80]}"
        return replace(
            prediction, labels=reading.labels, status=reading.status, reason=reason, extra=extra
        )


def _same_reading(
    prediction: Prediction, labels: tuple[str, ...], status: Status, space: LabelSpace
) -> bool:
    """Whether the judge reads the answer as the rules did: same top answer, or same label set."""
    if status is not Status(prediction.status):
        return False
    if space.multi_label:
        return {a for a in labels if a in space} == {a for a in prediction.labels if a in space}
    return (labels[:1] or (None,))[0] == prediction.top
