"""Label spaces of the supported datasets and the parser from free model text to labels."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from emovlm.errors import InputError
from emovlm.types import Status

MatchMode = Literal["word", "contains"]

# Words (and short phrases) people and models use for each basic emotion concept.
_ANGER = ("anger", "angry", "angered", "mad", "furious", "rage", "enraged", "irate")
_DISGUST = ("disgust", "disgusted", "disgusting", "revulsion", "repulsed")
_FEAR = ("fear", "fearful", "afraid", "scared", "frightened", "terrified", "fright")
_HAPPY = ("happy", "happiness", "joy", "joyful", "glad", "cheerful", "delighted")
_NEUTRAL = ("neutral", "neutrality", "expressionless", "no emotion", "no expression")
_SAD = ("sad", "sadness", "sorrow", "sorrowful", "unhappy", "saddened", "unhappiness")
_SURPRISE = ("surprise", "surprised", "astonished", "astonishment", "amazed", "shocked", "shock")

_BASIC7 = {
    "angry": _ANGER,
    "disgust": _DISGUST,
    "fear": _FEAR,
    "happy": _HAPPY,
    "neutral": _NEUTRAL,
    "sad": _SAD,
    "surprise": _SURPRISE,
}

# Phrases that mean the model declined or could not decide: never an out-of-set emotion.
_NON_ANSWERS = re.compile(
    r"\b(can't|cannot|can not|unable|sorry|unclear|not sure|unknown|unsure|impossible|"
    r"not possible|no face|i don't know|as an ai)\b"
)
# Lead-in phrases stripped before judging whether a short answer is an out-of-set label.
_FILLER = re.compile(
    r"^(the )?(answer|emotion|expression|label|prediction)( is)?[:\s]+|"
    r"^(the person|he|she|they) (is|are|looks?|seems?|appears?)( to be)?\s+|^(a|an)\s+"
)
_NEGATION = re.compile(r"\b(not|no|never|isn't|aren't|without|rather than)\s+(\w+\s+)?$")
_NEGATED_ITEM = re.compile(r"\b(not|no|never|isn't|aren't|without)\b")
_SHORT_ANSWER_WORDS = 4
_LIST_SEPARATORS = re.compile(r"[,;\n]+")


@dataclass(frozen=True)
class Parsed:
    """What the parser found in one answer: ranked answers (labels or out-of-set words) and a status."""

    labels: tuple[str, ...]
    status: Status

    @property
    def in_set(self) -> bool:
        """True when the top answer is a label of the space."""
        return self.status is Status.OK


@dataclass(frozen=True)
class LabelSpace:
    """The ordered label names of a dataset, their synonyms, and a parser for model text."""

    name: str
    labels: tuple[str, ...]
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    multi_label: bool = False
    has_vad: bool = False

    def __contains__(self, label: object) -> bool:
        """True when `label` is one of this space's label names."""
        return label in self._index

    def __len__(self) -> int:
        """Number of labels."""
        return len(self.labels)

    def index(self, label: str) -> int:
        """Position of a label name in the space's order."""
        return self._index[label]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels)}

    @cached_property
    def word_to_label(self) -> dict[str, str]:
        """Every known word or phrase (lowercase) mapped to the label it stands for."""
        table: dict[str, str] = {}
        for label in self.labels:
            for word in self.synonyms.get(label, ()):
                table.setdefault(word.lower(), label)
        for label in self.labels:  # a label's own name always wins over another's synonym
            table[label.lower()] = label
        return table

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        words = set(self.word_to_label) | (_other_emotion_words() - set(self.word_to_label))
        alternation = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        return re.compile(rf"(?<![\w-])({alternation})(?![\w-])")

    def normalize(self, answer: str) -> str | None:
        """Map one answer (a label, a synonym, any case) to its label name, or None."""
        return self.word_to_label.get(answer.strip().lower())

    def parse(self, text: str | None, match: MatchMode = "word") -> Parsed:
        """Turn free model text into ranked answers, keeping labels, out-of-set words and unparsed apart.

        `match="word"` matches whole words and synonyms; `match="contains"` counts a label when its
        name occurs anywhere in the text ("pain" in "painful"), as some published scoring scripts do.
        """
        lowered = (text or "").strip().lower()
        if not lowered:
            return Parsed((), Status.UNPARSED)
        if match == "contains":
            found = self._find_contained(lowered)
        elif _is_ranked_list(lowered):
            found = self._find_in_items(lowered)
        else:
            found = self._find_words(lowered)
        if not found:
            short = _short_answer(lowered)
            if short is None:
                return Parsed((), Status.UNPARSED)
            found = [short]
        return Parsed(tuple(found), self._status_of(found))

    def _status_of(self, found: list[str]) -> Status:
        if self.multi_label:
            return Status.OK if any(a in self for a in found) else Status.OUT_OF_SET
        return Status.OK if found[0] in self else Status.OUT_OF_SET

    def _find_words(self, lowered: str) -> list[str]:
        found: list[str] = []
        for m in self._pattern.finditer(lowered):
            if _NEGATION.search(lowered[: m.start()]):
                continue
            answer = self.word_to_label.get(m.group(1), m.group(1))
            if answer not in found:
                found.append(answer)
        return found

    def _find_in_items(self, lowered: str) -> list[str]:
        """Each item of a list answer gives one ranked answer, so ranks stay where the model put them."""
        found: list[str] = []
        for item in _LIST_SEPARATORS.split(lowered):
            words = self._find_words(item)
            negated = _NEGATED_ITEM.search(item) is not None
            answer = words[0] if words else None if negated else _short_answer(item)
            if answer is not None and answer not in found:
                found.append(answer)
        return found

    def _find_contained(self, lowered: str) -> list[str]:
        positions = {label: lowered.find(label.lower()) for label in self.labels}
        return sorted((lab for lab, pos in positions.items() if pos >= 0), key=positions.get)


def _is_ranked_list(lowered: str) -> bool:
    """True for answers like "Neutral, Concern, Sad": several short separated items."""
    items = [i for i in _LIST_SEPARATORS.split(lowered) if i.strip()]
    return len(items) > 1 and all(len(i.split()) <= _SHORT_ANSWER_WORDS for i in items)


def _short_answer(lowered: str) -> str | None:
    """A short answer with no known emotion word is kept as an out-of-set answer, else None."""
    if _NON_ANSWERS.search(lowered):
        return None
    first_line = lowered.splitlines()[0]
    head = re.split(r"[,;]", first_line)[0]
    stripped = _FILLER.sub("", head).strip(" .!?\"'*:`")
    words = stripped.split()
    if not words or len(words) > _SHORT_ANSWER_WORDS or not re.search(r"[a-z]", stripped):
        return None
    return " ".join(words)


# EMOTIC's 26 categories, in the dataset's own order, with common word forms.
_EMOTIC = {
    "affection": ("affectionate", "love", "loving", "tenderness"),
    "anger": _ANGER,
    "annoyance": ("annoyed", "irritated", "irritation", "frustrated", "frustration"),
    "anticipation": ("anticipating", "expectant", "expectation"),
    "aversion": ("averse", "dislike"),
    "confidence": ("confident", "self-assured"),
    "disapproval": ("disapproving", "disapprove"),
    "disconnection": (
        "disconnected",
        "detached",
        "indifferent",
        "indifference",
        "bored",
        "boredom",
    ),
    "disquietment": ("disquiet", "disquieted", "uneasy", "unease", "worried", "worry", "nervous"),
    "doubt/confusion": ("doubt", "confusion", "confused", "doubtful", "uncertain", "puzzled"),
    "embarrassment": ("embarrassed", "ashamed", "shame", "shy"),
    "engagement": ("engaged", "interested", "interest", "focused", "attentive", "concentration"),
    "esteem": ("respect", "admiration", "admiring"),
    "excitement": ("excited", "enthusiastic", "enthusiasm", "thrilled"),
    "fatigue": ("tired", "fatigued", "exhausted", "exhaustion", "sleepy", "weary"),
    "fear": _FEAR,
    "happiness": _HAPPY,
    "pain": ("pained", "hurt", "hurting"),
    "peace": ("peaceful", "calm", "serene", "relaxed", "tranquil"),
    "pleasure": ("pleased", "enjoyment", "enjoying", "content", "contentment"),
    "sadness": _SAD,
    "sensitivity": ("sensitive", "vulnerable"),
    "suffering": ("suffer", "distress", "distressed", "anguish", "misery"),
    "surprise": _SURPRISE,
    "sympathy": ("sympathetic", "compassion", "compassionate", "empathy", "caring"),
    "yearning": ("longing", "yearn", "desire", "wistful"),
}

_MAFW = {
    "anger": _ANGER,
    "disgust": _DISGUST,
    "fear": _FEAR,
    "happiness": _HAPPY,
    "neutral": _NEUTRAL,
    "sadness": _SAD,
    "surprise": _SURPRISE,
    "contempt": ("contemptuous", "scorn", "scornful", "disdain", "disdainful"),
    "anxiety": ("anxious", "nervous", "nervousness", "worried", "worry", "uneasy"),
    "helplessness": ("helpless", "powerless", "hopeless", "hopelessness"),
    "disappointment": ("disappointed", "letdown", "let down"),
}


def _space(
    name: str, order: list[str], table: dict[str, tuple[str, ...]], **kw: bool
) -> LabelSpace:
    return LabelSpace(name, tuple(order), {k: table[k] for k in order}, **kw)


_DFEW_ORDER = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]
_FERV_ORDER = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
_RAFDB = {
    "surprise": _SURPRISE,
    "fear": _FEAR,
    "disgust": _DISGUST,
    "happiness": _HAPPY,
    "sadness": _SAD,
    "anger": _ANGER,
    "neutral": _NEUTRAL,
}

LABEL_SPACES: dict[str, LabelSpace] = {
    "dfew": _space("dfew", _DFEW_ORDER, _BASIC7),
    "ferv39k": _space("ferv39k", _FERV_ORDER, _BASIC7),
    "mafw": _space("mafw", list(_MAFW), _MAFW),
    "emotic": _space("emotic", list(_EMOTIC), _EMOTIC, multi_label=True, has_vad=True),
    "rafdb": _space("rafdb", list(_RAFDB), _RAFDB),
    "fer2013": _space(
        "fer2013", ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"], _BASIC7
    ),
}
"""Built-in label spaces by name, each in its dataset's official label order."""

# Emotion words that are labels in no space but that models answer (kept as out-of-set).
_EXTRA_EMOTION_WORDS = (
    "pain",
    "painful",
    "concentration",
    "contempt",
    "contemptuous",
    "confusion",
    "confused",
    "boredom",
    "bored",
    "calm",
    "interest",
    "interested",
    "pride",
    "proud",
    "shame",
    "guilt",
    "embarrassment",
    "embarrassed",
    "anxiety",
    "anxious",
    "excitement",
    "excited",
    "relief",
    "tired",
    "tiredness",
    "pensive",
    "thoughtful",
    "determination",
    "determined",
    "love",
    "amusement",
    "amused",
    "awe",
    "jealousy",
    "envy",
    "nostalgia",
    "serious",
    "seriousness",
    "curiosity",
    "curious",
    "frustration",
    "frustrated",
    "annoyance",
    "annoyed",
    "despair",
    "grief",
    "distress",
    "worry",
    "worried",
    "nervous",
    "helpless",
    "disappointment",
    "disappointed",
    "satisfaction",
    "hope",
    "loneliness",
    "lonely",
    "melancholy",
    "sorrow",
)


def _other_emotion_words() -> set[str]:
    """All emotion words known to any space, plus common ones no space uses."""
    words = set(_EXTRA_EMOTION_WORDS)
    for table in (_BASIC7, _MAFW, _EMOTIC, _RAFDB):
        for label, syns in table.items():
            words.add(label)
            words.update(syns)
    return words


def get_label_space(name: str) -> LabelSpace:
    """The built-in label space called `name` (case-insensitive), with a helpful error otherwise."""
    key = name.strip().lower()
    if key not in LABEL_SPACES:
        known = ", ".join(sorted(LABEL_SPACES))
        raise InputError(f"unknown label set {name!r}; choose one of: {known}")
    return LABEL_SPACES[key]
