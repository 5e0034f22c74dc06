"""Read a model's free-text answer into ranked labels: prose, negation, cues, lists, JSON, Chinese.

The reading, in order (docs/metrics.md, "How answers are read"):

1. Markdown is stripped, Chinese punctuation becomes ASCII, and a JSON object's answer field
   (`emotion`, `label`, `answer`, `categories`, ...) replaces the text when there is one.
2. "Reason:"/"Explanation:" sections are cut (kept only when nothing else names an emotion).
3. Emotion mentions are found: label names and synonyms of the space, and the words of the
   curated lexicon (vocab/emotion_lexicon.yaml) for out-of-set answers; any other word is not
   an emotion. A mention in the scope of a negation ("not", "n't", "no", "never", "without",
   "neither…nor", "rather than", "instead of", 不/没/非) or of "whether/if" is set aside.
4. The last final-answer cue whose words name an emotion ("Answer:", "Emotion:", "the emotion
   is", "I would say", "so", "mostly", an option letter "(D)") decides where the answer is;
   without one, the whole text is read.
5. Single-label: the first mention decides (a label or an out-of-set word alike); the other
   mentions are ranked runners-up.
   Multi-label: every non-negated label, in order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from emovlm.types import Status

MatchMode = Literal["word", "contains", "contains-any-case"]
MATCH_MODES: tuple[MatchMode, ...] = ("word", "contains", "contains-any-case")
"""word: this reader | contains: the paper's rule, case-sensitive `label in answer` on the raw
text | contains-any-case: the same on lower-cased text (emovlm's earlier, lenient rule)."""

Extract = Literal["rules", "judge", "rules+judge"]
EXTRACT_MODES: tuple[Extract, ...] = ("rules", "judge", "rules+judge")
"""How answers become labels: these rules alone, a text LLM judge alone, or the judge on the
answers the rules leave ambiguous or unparsed (emovlm.recognizers.judge)."""

Cue = Literal["", "json", "heading", "phrase", "option", "list", "first", "contains"]
LEXICON_FILE = Path(__file__).parent / "vocab" / "emotion_lexicon.yaml"


@dataclass(frozen=True)
class Parsed:
    """What the reader found in one answer: ranked answers, a status, and how it read them.

    `labels` holds the top answer then the runners-up (labels or out-of-set words). `cue` says
    what decided the top answer: a JSON field, an answer heading ("Emotion:"), an answer phrase
    ("the emotion is"), an option letter, list position, the first mention, or label containment.
    `negated` holds the emotions read as negated or hypothetical and left out.
    """

    labels: tuple[str, ...]
    status: Status
    cue: Cue = ""
    negated: tuple[str, ...] = ()
    n_labels: int = 0
    evidence: str = ""

    @property
    def in_set(self) -> bool:
        """True when the top answer is a label of the space."""
        return self.status is Status.OK

    def to_json(self) -> dict[str, Any]:
        """The reading as stored in `Prediction.extra["parse"]`."""
        return {
            "cue": self.cue,
            "negated": list(self.negated),
            "n_labels": self.n_labels,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    word: str
    answer: str
    negated: bool
    in_set: bool


@dataclass(frozen=True)
class Lexicon:
    """The curated emotion lexicon: extra English words, context-dependent words, Chinese words."""

    english: frozenset[str]
    ambiguous: frozenset[str]
    chinese: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def words(self) -> set[str]:
        """Every word of the lexicon, English and Chinese."""
        return set(self.english) | {w for words in self.chinese.values() for w in words}


@cache
def load_lexicon(path: Path = LEXICON_FILE) -> Lexicon:
    """The emotion lexicon data file (sources named in its header)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Lexicon(
        frozenset(w.lower() for w in data["english"]),
        frozenset(w.lower() for w in data["ambiguous"]),
        {concept: tuple(words) for concept, words in data["chinese"].items()},
    )


# ---- text clean-up ---------------------------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u9fff]")
_CJK_PUNCT = str.maketrans(
    {"，": ", ", "。": ". ", "；": "; ", "：": ": ", "！": "! ", "？": "? ", "、": ", "}
    | {"（": " (", "）": ") ", "“": '"', "”": '"', "‘": "'", "’": "'", "「": '"', "」": '"'}
)
_FENCE = re.compile(r"```[a-zA-Z]*")
_MD_HEADING = re.compile(r"^\s*#{1,6}\s*(.+?)\s*#*\s*$", re.MULTILINE)
_MD_MARKS = re.compile(r"\*\*|__|[*`>|~]|^\s*[-•]\s+|^-{3,}$", re.MULTILINE)


def clean_text(text: str) -> str:
    """Lower-cased text without Markdown, with ASCII punctuation; headings end in ':'."""
    text = _FENCE.sub(" ", text.translate(_CJK_PUNCT))
    text = _MD_HEADING.sub(lambda m: m.group(1).rstrip(":") + ":", text)
    text = _MD_MARKS.sub(" ", text)
    text = re.sub(r"[ \t]+", " ", text)
    return text.lower().strip()


# ---- JSON answers ----------------------------------------------------------------------------

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_JSON_BLOCK = re.compile(r"[{\[].*[}\]]", re.DOTALL)
_ANSWER_KEY = re.compile(r"emotion|label|answer|categor|predict|class|情绪|答案|类别")
_OTHER_KEY = re.compile(r"reason|explan|confiden|score|rational|valence|arousal|dominance|why")


def json_answer(text: str) -> tuple[bool, str | None]:
    """(found, answer text) of a JSON answer: the emotion field or a list of strings.

    (False, None) when the text holds no JSON with such a field; (True, None) when the field is
    there but empty (the model gave no emotion).
    """
    block = _JSON_BLOCK.search(text)
    if block is None:
        return False, None
    try:
        value = json.loads(block.group(0))
    except json.JSONDecodeError:
        try:
            value = json.loads(block.group(0).replace("'", '"'))
        except json.JSONDecodeError:
            return False, None
    if isinstance(value, list):
        strings = [str(v) for v in value if isinstance(v, str)]
        return (True, ", ".join(strings)) if strings else (False, None)
    if not isinstance(value, dict):
        return False, None
    for key, field_value in value.items():
        name = str(key).lower()
        if _ANSWER_KEY.search(name) and not _OTHER_KEY.search(name):
            if isinstance(field_value, list):
                return True, ", ".join(str(v) for v in field_value if v is not None) or None
            return True, (str(field_value) if field_value not in (None, "") else None)
    return False, None


# ---- sections and cues -----------------------------------------------------------------------

_ANSWER_HEADS = (
    r"final answer|final emotion|answer|predicted emotions?|emotions?|emotion categories|"
    r"emotion labels?|categories|category|labels?|prediction|conclusion|verdict|"
    r"情绪类别|最终答案|情绪|答案|结论"
)
_HEADING_CUE = re.compile(rf"(?<![\w-])(?:{_ANSWER_HEADS})\s*(?::|\s[-–=]\s)")
_REASON_HEAD = re.compile(
    r"(?<![\w-])(?:reasons?|reasoning|explanation|rationale|why|justification|evidence|"
    r"理由|原因|解释|分析)\s*(?::|\s[-–]\s)"
)
_PHRASE_CUE = re.compile(
    r"(?<![\w-])(?:"
    r"(?:the\s+)?(?:final\s+|correct\s+)?(?:answer|option|choice)\s+(?:is|would be)|"
    r"(?:the\s+)?(?:(?:main|dominant|primary|overall|predominant|most likely|likely|predicted|"
    r"final|expressed|detected|key)\s+)*emotions?"
    r"(?:\s+(?:shown|expressed|displayed|conveyed|depicted|(?:of|in|on)\s[^.!?\n]{0,40}?))?"
    r"\s+(?:is|are|would be|seems to be|appears to be)|"
    r"i\s+would\s+(?:say|choose|pick|go with)|i'd\s+(?:say|choose|pick|go with)|"
    r"i\s+think(?:\s+(?:it\s+is|it's))?|i\s+believe|i\s+choose|i\s+pick|"
    r"lean(?:s|ing)?\s+towards?|(?:more|most)\s+likely|mostly|primarily|mainly|predominantly|"
    r"(?:^|(?<=[.!?;\n]\s)|(?<=[.!?;\n]))\s*(?:so|thus|therefore|hence|overall|in conclusion|"
    r"to conclude|in summary|all in all)\b|"
    r"我认为|最终答案是|答案是|情绪为|情绪是|表情是|情绪类别为"
    r")"
)
_OPTION = re.compile(r"(?:\(([a-k])\)|(?<![\w'])([a-k])[.):]\s(?=\s*[^\W\d])|\boption\s+([a-k])\b)")
_HARD_END = re.compile(r"[.!?;\n]")
_FINAL_COLON = re.compile(r":\s*((?:[^\W\d][\w'/-]*\s*){1,3})[.!]?\s*$")


@dataclass(frozen=True)
class _Region:
    start: int
    end: int
    cue: Cue


def _without_reasons(text: str) -> str:
    """The text with each reason section blanked (same length, so positions stay)."""
    out = text
    for match in _REASON_HEAD.finditer(text):
        heading = _HEADING_CUE.search(text, match.end())
        stop = heading.start() if heading else len(text)
        out = out[: match.start()] + " " * (stop - match.start()) + out[stop:]
    return out


def _cue_regions(text: str) -> list[_Region]:
    """Where answer cues point (to the line's, sentence's or next lines' end), in the order they
    are tried backwards: text order, with a final ": word" before all (so tried last)."""
    regions = []
    for match in _HEADING_CUE.finditer(text):
        line_end = text.find("\n", match.end())
        line_end = len(text) if line_end < 0 else line_end
        if text[match.end() : line_end].strip(" :-"):
            regions.append(_Region(match.end(), line_end, "heading"))
        else:  # "Emotions:" on its own line: the lines under it, up to a blank line
            block = re.search(r"\n\s*\n", text[line_end:])
            regions.append(
                _Region(match.end(), line_end + block.start() if block else len(text), "heading")
            )
    for match in _PHRASE_CUE.finditer(text):
        end = _HARD_END.search(text, match.end())
        regions.append(_Region(match.end(), end.start() if end else len(text), "phrase"))
    for match in _OPTION.finditer(text):
        end = _HARD_END.search(text, match.end())
        regions.append(_Region(match.start(), end.start() if end else len(text), "option"))
    regions.sort(key=lambda r: r.start)
    final = _FINAL_COLON.search(text)
    if final:  # "…, with a blank stare: neutral." (tried after every other cue)
        regions.insert(0, _Region(final.start(1), final.end(1), "heading"))
    return regions


# ---- negation --------------------------------------------------------------------------------

_NEGATOR = re.compile(
    r"(?<![\w-])(?:not|no|never|without|neither|nor|hardly|lack of|free of|absence of|far from|"
    r"rather than|instead of|whether|if(?! anything))(?![\w-])|n't(?![\w-])"
)
_CJK_NEGATOR = re.compile(r"(?:不|没|非|毫无|并无)[很太是在感到觉得有]{0,3}$")
_SCOPE_END = re.compile(
    r"[.!?;:\n()\[\]]|—|(?<![\w-])(?:but|instead(?! of)|rather(?! than)|just|only|whereas|"
    r"while|although|though|yet)(?![\w-])|而是|但是?|而"
)
_COORDINATOR = re.compile(r"(?<![\w-])(?:or|nor|and|even|any)(?![\w-])")
_MAX_GAP_WORDS = 5
_SPEAKER = re.compile(r"(?<![\w'])(?:i|we)(?:'m|'d be|'ll be|'re| am| are| would be| will be)\s+$")
_LIST_TAIL = re.compile(r"(?:\s*(?:,|\b(?:emo|or|nor|and|even|any)\b))*")


class TextReader:
    """Reads answers for one label space: a word → label table plus the curated lexicon."""

    def __init__(
        self,
        labels: Iterable[str],
        word_to_label: Mapping[str, str],
        multi_label: bool,
        emotion_words: Iterable[str] = (),
    ) -> None:
        self.labels = tuple(labels)
        self.word_to_label = dict(word_to_label)
        self.multi_label = multi_label
        lexicon = load_lexicon()
        self.ambiguous = lexicon.ambiguous
        words = set(self.word_to_label) | lexicon.words() | set(emotion_words)
        ascii_words = sorted((w for w in words if not _CJK.search(w)), key=len, reverse=True)
        cjk_words = sorted((w for w in words if _CJK.search(w)), key=len, reverse=True)
        alternation = "|".join(
            [rf"(?<![\w-]){re.escape(w)}(?![\w-])" for w in ascii_words]
            + [re.escape(w) for w in cjk_words]
        )
        self.pattern = re.compile(alternation)

    # ---- public ----

    def read(self, text: str | None, match: MatchMode = "word") -> Parsed:
        """The reading of one answer (see the module docstring)."""
        raw = (text or "").strip()
        if not raw:
            return Parsed((), Status.UNPARSED)
        if match != "word":
            return self._contained(raw, case_sensitive=match == "contains")
        tagged = _ANSWER_TAG.search(raw)  # reasoning models: <think>…</think><answer>…</answer>
        if tagged:
            inside = self._read_text(clean_text(tagged.group(1)))
            if inside.labels or inside.negated:
                return replace(inside, cue="heading")
        cleaned = clean_text(_THINK.sub(" ", raw))
        found, answer = json_answer(cleaned)
        if found:
            if answer is None:
                return Parsed((), Status.UNPARSED, "json")
            parsed = self._read_text(clean_text(answer), list_like=True)
            return Parsed(
                parsed.labels, parsed.status, "json", parsed.negated, parsed.n_labels, answer
            )
        parsed = self._read_text(_without_reasons(cleaned))
        if parsed.status is Status.UNPARSED and not parsed.negated:
            return self._read_text(cleaned)
        return parsed

    # ---- steps ----

    def _read_text(self, text: str, list_like: bool = False) -> Parsed:
        mentions = self._mentions(text)
        negated = tuple(dict.fromkeys(m.answer for m in mentions if m.negated))
        kept = [m for m in mentions if not m.negated]
        if not kept:
            return Parsed((), Status.UNPARSED, "", negated)
        chosen, cue, region = kept, "first", (0, len(text))
        for candidate in reversed(_cue_regions(text)):
            inside = [m for m in kept if candidate.start <= m.start < candidate.end]
            if inside:
                chosen, cue, region = inside, candidate.cue, (candidate.start, candidate.end)
                break
        evidence = text[region[0] : region[1]].strip(" :-,.")[:120]
        if list_like or _is_list(text[region[0] : region[1]], self.pattern):
            cue = "list" if cue == "first" else cue
        if self.multi_label:
            ordered = [m.answer for m in chosen if m.in_set] + [m.answer for m in chosen]
        else:
            ordered = [m.answer for m in chosen] + [m.answer for m in kept]
        answers = tuple(dict.fromkeys(ordered))
        n_labels = len({m.answer for m in kept if m.in_set})
        status = Status.OK if answers[0] in self.labels else Status.OUT_OF_SET
        return Parsed(answers, status, cue, negated, n_labels, evidence)

    def _mentions(self, text: str) -> list[_Mention]:
        mentions = []
        for m in self.pattern.finditer(text):
            word = m.group(0)
            if word in self.ambiguous and not _used_as_emotion(text, m.start(), m.end()):
                continue
            if _SPEAKER.search(text, max(0, m.start() - 20), m.start()):
                continue  # the model about itself: "I'm afraid I can't", "happy to help"
            answer = self.word_to_label.get(word, word)
            negated = self._negated(text, m.start(), m.end())
            mentions.append(
                _Mention(m.start(), m.end(), word, answer, negated, answer in self.labels)
            )
        return mentions

    def _negated(self, text: str, start: int, end: int) -> bool:
        """Whether a negation (or whether/if) before this mention reaches it, in its clause."""
        if _CJK.search(text[start:end]):
            return bool(_CJK_NEGATOR.search(text[max(0, start - 6) : start]))
        ends = list(_SCOPE_END.finditer(text, 0, start))
        clause_start = ends[-1].end() if ends else 0
        prefix = text[clause_start:start]
        negators = list(_NEGATOR.finditer(prefix))
        if not negators:
            return False
        between = prefix[negators[-1].end() :]
        first = self.pattern.search(between)
        lead = between if first is None else between[: first.start()]
        if "," in lead or len(re.findall(r"[\w'-]+", lead)) > _MAX_GAP_WORDS:
            return False
        if first is None:
            return True
        # an earlier emotion took the negation; this one shares it only in a coordinated list:
        # "neither happy nor sad", "no anger, sadness or fear" (not "not happy, sad")
        listed = between[first.start() :]
        residue = _COORDINATOR.sub(" ", self.pattern.sub(" ", listed))
        if residue.strip(" ,"):
            return False
        if "," not in listed:
            return True
        tail_end = _SCOPE_END.search(text, end)
        tail = self.pattern.sub(" emo ", text[end : tail_end.start() if tail_end else len(text)])
        rest_of_list = _LIST_TAIL.match(tail)
        return bool(_COORDINATOR.search(listed) or _COORDINATOR.search(rest_of_list.group(0)))

    def _contained(self, raw: str, *, case_sensitive: bool) -> Parsed:
        """The paper's rule: every label whose name occurs in the text, in order of first place."""
        haystack = raw if case_sensitive else raw.lower()
        positions = {label: haystack.find(label) for label in self.labels}
        found = sorted((lab for lab, pos in positions.items() if pos >= 0), key=positions.get)
        if found:
            return Parsed(tuple(found), Status.OK, "contains", (), len(found))
        words = self.read(raw)
        if words.status is Status.OUT_OF_SET:
            return Parsed(words.labels, Status.OUT_OF_SET, "contains", words.negated)
        return Parsed((), Status.UNPARSED, "contains", words.negated)


_DETERMINERS = frozenset(
    [
        "the",
        "a",
        "an",
        "this",
        "that",
        "these",
        "those",
        "its",
        "our",
        "my",
        "your",
        "his",
        "their",
        "main",
        "primary",
        "i",
        "we",
        "you",
        "of",
    ]
)
_AFTER_NOUN = frozenset(["of", "is", "was", "to", "for", "this", "that", "helps"])
_MODALS = frozenset(
    [
        "can",
        "cannot",
        "can't",
        "could",
        "couldn't",
        "will",
        "won't",
        "would",
        "may",
        "might",
        "must",
        "should",
        "not",
        "never",
    ]
)


def _used_as_emotion(text: str, start: int, end: int) -> bool:
    """An ambiguous word ("content", "interest", "hope") is an emotion unless used as a noun/verb."""
    before = re.findall(r"[\w']+", text[max(0, start - 30) : start])
    after = re.findall(r"[\w']+", text[end : end + 20])
    if before and before[-1] in _DETERMINERS:
        return False
    if re.match(r"\s*[:=]\s*(?:\d|high|medium|low)", text[end:]):
        return False  # a field name: "confidence: 0.8"
    if len(before) >= 2 and before[-1] in ("be", "been") and before[-2] in _MODALS:
        return False  # a passive verb: "cannot be determined"
    return not (after and after[0] in _AFTER_NOUN)


def _is_list(region: str, emotion: re.Pattern[str]) -> bool:
    """True for "Neutral, Sad, Fear", "1. Angry 2. Sad", "Happy > Surprise": short emotion items."""
    items = [i for i in re.split(r"[,;\n>|]+|\s\d+[.)]\s", region) if i.strip(" .:-")]
    if len(items) < 2:
        return False
    return all(
        emotion.search(i) and len(re.findall(r"[\w'/-]+", re.sub(r"^\s*\d+[.)]", "", i))) <= 3
        for i in items
    )
