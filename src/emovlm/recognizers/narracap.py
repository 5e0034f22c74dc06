"""NarraCap → text LLM: a caption built by zero-shot CLIP over fixed vocabularies, then label picking.

Stage 1 (Paper B's NarraCap): CLIP picks who the person is (on the person crop), where they are
and what they do (on the full image), and keeps every physical/social signal whose probability
on the person crop is above mean + k·std (k = `signal_std`); the picks fill the caption template
("This person is a man who is playing a guitar on a stage. He is smiling."). Stage 2 is the
caption → LLM recognizer's `LabelPicker`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np

from emovlm.backends.clip import CLIPBackend, build_clip, zero_shot_probabilities
from emovlm.backends.images import crop_box
from emovlm.errors import MediaError
from emovlm.labels import LabelSpace
from emovlm.prompts import load_prompt
from emovlm.recognizers.caption_llm import (
    Description,
    LabelPicker,
    TwoStageRecognizer,
    template_digest,
)
from emovlm.recognizers.settings import NarraCapSettings, PickerSettings, with_settings
from emovlm.types import Cost, Sample
from emovlm.video import probe, read_frames
from emovlm.vocab import NarraCapVocabulary, load_narracap_vocabulary

CLIP_TEXTS = {
    "who": "a photo of {}.",
    "where": "a photo taken {}.",
    "action": "a photo of a person who {}.",
    "signals": "a photo of a person who {}.",
}
"""How each vocabulary entry is worded for CLIP's text encoder."""


@dataclass(frozen=True)
class NarraCapPicks:
    """What CLIP chose for one person: who, where, action, and the kept signals with probabilities."""

    who: str
    pronoun: str
    where: str
    action: str
    signals: dict[str, float]


def kept_signals(probabilities: np.ndarray, signals: Sequence[str], k: float) -> dict[str, float]:
    """Signals whose probability is above mean + k·std of all signals', most probable first."""
    threshold = probabilities.mean() + k * probabilities.std()
    order = np.argsort(-probabilities, kind="stable")
    return {signals[i]: float(probabilities[i]) for i in order if probabilities[i] > threshold}


class NarraCapCaptioner:
    """Zero-shot CLIP picks from the NarraCap vocabularies, worded by the caption template."""

    def __init__(
        self,
        clip: CLIPBackend,
        vocabulary: NarraCapVocabulary,
        *,
        signal_std: float = 3.0,
        template: str = "narracap",
    ) -> None:
        self.clip, self.vocabulary, self.signal_std = clip, vocabulary, signal_std
        self.template = load_prompt(template)

    def config(self) -> dict[str, Any]:
        """CLIP model, vocabularies, threshold and template: what determines the captions."""
        return {
            "clip": dict(self.clip.fingerprint()),
            "vocabulary": self.vocabulary.sources,
            "vocabulary_sha256": self.vocabulary.fingerprint(),
            "signal_std": self.signal_std,
            "caption_prompt": template_digest(self.template),
            "clip_texts": CLIP_TEXTS,
        }

    @cached_property
    def _texts(self) -> dict[str, np.ndarray]:
        """CLIP features of every vocabulary entry, computed once."""
        vocab = self.vocabulary
        entries = {"who": list(vocab.who), "where": vocab.where, "action": vocab.action}
        entries["signals"] = vocab.signals
        return {
            part: self.clip.text_features([CLIP_TEXTS[part].format(e) for e in words])
            for part, words in entries.items()
        }

    def picks(
        self, persons: Sequence[np.ndarray], scenes: Sequence[np.ndarray]
    ) -> list[NarraCapPicks]:
        """CLIP's choices for each (person crop, full image) pair."""
        texts, vocab = self._texts, self.vocabulary
        person_features = self.clip.image_features(persons)
        scene_features = self.clip.image_features(scenes)
        who = zero_shot_probabilities(self.clip, person_features, texts["who"]).argmax(axis=1)
        where = zero_shot_probabilities(self.clip, scene_features, texts["where"]).argmax(axis=1)
        action = zero_shot_probabilities(self.clip, scene_features, texts["action"]).argmax(axis=1)
        signals = zero_shot_probabilities(self.clip, person_features, texts["signals"])
        phrases = list(vocab.who)
        return [
            NarraCapPicks(
                who=phrases[who[i]],
                pronoun=vocab.who[phrases[who[i]]],
                where=vocab.where[where[i]],
                action=vocab.action[action[i]],
                signals=kept_signals(signals[i], vocab.signals, self.signal_std),
            )
            for i in range(len(persons))
        ]

    def caption(self, picks: NarraCapPicks) -> str:
        """The caption text of one person's picks."""
        return self.template.render(
            who=picks.who,
            pronoun=picks.pronoun,
            where=picks.where,
            action=picks.action,
            signals=list(picks.signals),
        )

    def describe(self, samples: Sequence[Sample]) -> list[Description]:
        """A NarraCap caption per sample (its middle frame for videos); unreadable media fail."""
        started = time.perf_counter()
        failures: dict[int, str] = {}
        persons, scenes, kept = [], [], []
        for i, sample in enumerate(samples):
            try:
                scene = _middle_frame(sample)
                person = crop_box(scene, sample.box) if sample.box is not None else scene
            except MediaError as exc:
                failures[i] = str(exc)
                continue
            persons.append(person)
            scenes.append(scene)
            kept.append(i)
        picked = dict(zip(kept, self.picks(persons, scenes), strict=True)) if kept else {}
        share = Cost(seconds=(time.perf_counter() - started) / max(len(samples), 1))
        descriptions = []
        for i, sample in enumerate(samples):
            if i in failures:
                descriptions.append(Description(sample.id, failure=failures[i], cost=share))
                continue
            picks = picked[i]
            extra = {"narracap": asdict(picks)}
            descriptions.append(
                Description(sample.id, self.caption(picks), cost=share, extra=extra)
            )
        return descriptions


def _middle_frame(sample: Sample) -> np.ndarray:
    info = probe(sample.media)
    return read_frames(sample.media, [info.frame_count // 2]).frames[0].image


@with_settings(NarraCapSettings)
class NarraCapRecognizer(TwoStageRecognizer):
    """NarraCap captions from zero-shot CLIP (stage 1), a text LLM picks the labels (stage 2).

    Stage 1 takes `clip_backend`, `clip_model` (required: no CLIP weights ship), `vocabulary` (a
    folder replacing any of the built-in word lists), `signal_std` and `caption_prompt`; stage 2
    takes the `llm_*` settings, `mode`, `prompt`, `max_labels`, `match`, `vad`, `max_new_tokens`.
    Each prediction keeps the caption in `extra["description"]` and CLIP's picks in
    `extra["narracap"]`.
    """

    name = "narracap-llm"

    def __init__(
        self, label_space: LabelSpace, settings: NarraCapSettings | None = None, **options: Any
    ) -> None:
        s = NarraCapSettings.of(settings, options)
        captioner = NarraCapCaptioner(
            build_clip(s.clip_backend, s.clip_model, device=s.device),
            load_narracap_vocabulary(s.vocabulary),
            signal_std=s.signal_std,
            template=s.caption_prompt,
        )
        super().__init__(
            label_space, s, captioner, LabelPicker(label_space, s.pick(PickerSettings))
        )
