"""Label spaces of the supported datasets and the parser from free model text to labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from emovlm.answers import (
    EXTRACT_MODES,
    MATCH_MODES,
    Extract,
    MatchMode,
    Parsed,
    TextReader,
    load_lexicon,
)
from emovlm.errors import InputError

__all__ = [
    "EXTRACT_MODES",
    "LABEL_SPACES",
    "Extract",
    "MATCH_MODES",
    "LabelSpace",
    "MatchMode",
    "Parsed",
    "get_label_space",
]

# Words (and short phrases) people and models use for each basic emotion concept.
_ANGER = ("anger", "angry", "angered", "mad", "furious", "rage", "enraged", "irate")
_DISGUST = ("disgust", "disgusted", "disgusting", "revulsion", "repulsed")
_FEAR = ("fear", "fearful", "afraid", "scared", "frightened", "terrified", "fright", "terror")
_HAPPY = ("happy", "happiness", "joy", "joyful", "glad", "cheerful", "delighted")
_NEUTRAL = ("neutral", "neutrality", "expressionless", "no emotion", "no expression")
_SAD = (
    "sad",
    "sadness",
    "sorrow",
    "sorrowful",
    "unhappy",
    "saddened",
    "unhappiness",
    "heartbroken",
    "grief",
    "grieving",
)
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
    def reader(self) -> TextReader:
        """The answer reader of this space (emovlm.answers)."""
        return TextReader(self.labels, self.word_to_label, self.multi_label, _other_emotion_words())

    def normalize(self, answer: str) -> str | None:
        """Map one answer (a label, a synonym, any case) to its label name, or None."""
        return self.word_to_label.get(answer.strip().lower())

    def parse(self, text: str | None, match: MatchMode = "word") -> Parsed:
        """Turn free model text into ranked answers, keeping labels, out-of-set words and unparsed apart.

        `match="word"` reads prose, negation, answer cues, lists, JSON and Chinese (see
        emovlm.answers); `match="contains"` is the Contextual-Emotion-Recognition scoring
        script's rule, case-sensitive `label in answer` on the raw text; `"contains-any-case"`
        does the same on lower-cased text.
        """
        if match not in MATCH_MODES:
            raise InputError(f"unknown match mode {match!r}; use one of: {', '.join(MATCH_MODES)}")
        return self.reader.read(text, match)


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


# The concept of the lexicon's Chinese words (vocab/emotion_lexicon.yaml) behind each label name.
_CONCEPT = {
    "angry": "anger",
    "happiness": "happy",
    "sadness": "sad",
    "aversion": "disgust",
    "disquietment": "anxiety",
    "doubt/confusion": "confusion",
}


def _space(
    name: str, order: list[str], table: dict[str, tuple[str, ...]], **kw: bool
) -> LabelSpace:
    chinese = load_lexicon().chinese
    synonyms = {k: (*table[k], *chinese.get(_CONCEPT.get(k, k), ())) for k in order}
    return LabelSpace(name, tuple(order), synonyms, **kw)


_DFEW_ORDER = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]
_FERV_ORDER = _DFEW_ORDER  # FERV39k's index order in the DFER codebases, as DFEW's
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
"""Built-in label spaces by name, each in the label order its dataset's own code indexes.

DFEW: the dataset's label numbers 1-7; FERV39k: the order of the DFER codebases (DFEW's);
MAFW: its 11 classes as released; EMOTIC: its 26 categories; RAF-DB: labels 1-7; FER2013: 0-6.
"""


def _other_emotion_words() -> set[str]:
    """Label names and synonyms of every built-in space (the lexicon file adds the rest)."""
    words: set[str] = set()
    for space in LABEL_SPACES.values():
        words.update(space.word_to_label)
    return words


def get_label_space(name: str) -> LabelSpace:
    """The built-in label space called `name` (case-insensitive), with a helpful error otherwise."""
    key = name.strip().lower()
    if key not in LABEL_SPACES:
        known = ", ".join(sorted(LABEL_SPACES))
        raise InputError(f"unknown label set {name!r}; choose one of: {known}")
    return LABEL_SPACES[key]
