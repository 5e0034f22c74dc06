"""The label spaces and the parser from free model text to labels, on real GPT-4V answers."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from emovlm.errors import InputError
from emovlm.labels import LABEL_SPACES, get_label_space
from emovlm.types import Status


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize(
    ("file", "space"), [("dfew", "dfew"), ("ferv39k", "ferv39k"), ("rafdb", "rafdb")]
)
def test_every_gold_label_of_the_real_answer_files_is_known(
    gpt4v_dir: Path, file: str, space: str
) -> None:
    labels = get_label_space(space)
    gold = Counter(labels.normalize(r["gt"]) for r in _rows(gpt4v_dir / f"{file}.csv"))
    assert None not in gold
    assert set(gold) == set(labels.labels)


def test_real_gpt4v_dfew_answers_parse_into_ranked_labels_and_keep_pain_out_of_set(
    gpt4v_dir: Path,
) -> None:
    dfew = get_label_space("dfew")
    parsed = [dfew.parse(r["gpt4v"]) for r in _rows(gpt4v_dir / "dfew.csv")]
    statuses = Counter(p.status for p in parsed)
    assert statuses == {Status.OK: 2331, Status.OUT_OF_SET: 6}
    out_of_set = [p for p in parsed if p.status is Status.OUT_OF_SET]
    assert all(p.labels[0] == "pain" for p in out_of_set)
    assert all(len(p.labels) == 5 for p in parsed)  # the model ranked five answers each time
    assert Counter(p.labels[0] for p in parsed).most_common(1)[0][0] == "neutral"


def test_rafdb_concentration_answer_is_out_of_set_not_dropped(gpt4v_dir: Path) -> None:
    rafdb = get_label_space("rafdb")
    answers = [rafdb.parse(r["gpt4v"]) for r in _rows(gpt4v_dir / "rafdb.csv")]
    odd = [a for a in answers if a.status is not Status.OK]
    assert [a.labels[0] for a in odd] == ["concentration"]
    assert odd[0].labels[1] == "neutral"  # the ranked rest is kept for top-k


@pytest.mark.parametrize(
    ("space", "text", "expected"),
    [
        ("dfew", "Anger", "angry"),
        ("mafw", "angry", "anger"),
        ("dfew", "Happiness", "happy"),
        ("mafw", "happy", "happiness"),
        ("ferv39k", "The person looks fearful.", "fear"),
        ("rafdb", "surprised", "surprise"),
        ("dfew", "disgusted", "disgust"),
        ("mafw", "She seems contemptuous", "contempt"),
        ("emotic", "Doubt/Confusion", "doubt/confusion"),
        ("emotic", "confused", "doubt/confusion"),
    ],
)
def test_synonyms_map_to_each_spaces_own_label(space: str, text: str, expected: str) -> None:
    parsed = get_label_space(space).parse(text)
    assert parsed.status is Status.OK
    assert parsed.labels[0] == expected


def test_three_outcomes_stay_apart() -> None:
    dfew = get_label_space("dfew")
    assert dfew.parse("Sad").status is Status.OK
    assert dfew.parse("Concentration").status is Status.OUT_OF_SET
    assert dfew.parse("Pensive.").labels == ("pensive",)
    assert dfew.parse("contempt").status is Status.OUT_OF_SET  # a MAFW label is not a DFEW one
    for text in (
        "",
        "   ",
        None,
        "I cannot determine the emotion from this video.",
        "Sorry, I can't help.",
    ):
        assert dfew.parse(text).status is Status.UNPARSED
        assert dfew.parse(text).labels == ()


def test_negated_mentions_are_ignored() -> None:
    dfew = get_label_space("dfew")
    assert dfew.parse("The person is not happy; they look sad.").labels == ("sad",)
    assert dfew.parse("not happy, sad").labels == ("sad",)


def test_unknown_words_in_a_ranked_list_keep_their_rank() -> None:
    parsed = get_label_space("dfew").parse("Neutral,Concern,Sad,Fear,Disgust")
    assert parsed.labels == ("neutral", "concern", "sad", "fear", "disgust")


def test_contains_matching_counts_label_names_inside_words() -> None:
    emotic = get_label_space("emotic")
    assert emotic.parse("a painful moment", match="contains").labels == ("pain",)
    assert emotic.parse("a painful moment").status is Status.OUT_OF_SET  # whole words by default


def test_multi_label_answers_keep_every_label_and_any_label_makes_them_usable() -> None:
    emotic = get_label_space("emotic")
    parsed = emotic.parse("Engagement, Anticipation, boredom, Concentration")
    assert parsed.status is Status.OK
    assert parsed.labels == ("engagement", "anticipation", "disconnection")


@pytest.mark.parametrize(
    ("text", "top", "cue", "negated"),
    [
        ("He doesn't seem happy at all. He seems angry.", "angry", "first", ("happy",)),
        ("Neither happy nor sad: neutral.", "neutral", "heading", ("happy", "sad")),
        ("Most likely: Disgust. Second: Anger.", "disgust", "phrase", ()),
        (
            "A neutral face, no signs of happiness, sadness, anger, fear, surprise, or disgust.",
            "neutral",
            "first",
            ("happy", "sad", "angry", "fear", "surprise", "disgust"),
        ),
        (
            "There are no signs of anger, sadness or fear.\nAnswer: Neutral",
            "neutral",
            "heading",
            (),
        ),
        ("It could be sadness, but I think it's more likely fear.", "fear", "phrase", ()),
        ("I choose (B) Sad. Options like happy or angry do not fit.", "sad", "option", ()),
        ('{"emotion": "neutral", "reasoning": "no sign of anger"}', "neutral", "json", ()),
        ("Emotion: Sadness\nReason: unlike someone who is angry, she cries.", "sad", "heading", ()),
        (
            "<think>Maybe angry? The tears say sadness.</think><answer>Sad</answer>",
            "sad",
            "heading",
            (),
        ),
    ],
)
def test_reading_keeps_what_decided_and_what_was_negated(
    text: str, top: str, cue: str, negated: tuple[str, ...]
) -> None:
    parsed = get_label_space("dfew").parse(text)
    assert (parsed.labels[0], parsed.cue) == (top, cue)
    assert set(negated) <= set(parsed.negated)
    assert parsed.to_json()["cue"] == cue


def test_only_lexicon_emotion_words_are_out_of_set() -> None:
    dfew = get_label_space("dfew")
    for discourse in (
        "Based on the content of the video, a man walks.",
        "Given the raised eyebrows.",
    ):
        assert dfew.parse(discourse).status is Status.UNPARSED
    assert dfew.parse("Smirk").status is Status.UNPARSED  # not an emotion word
    assert dfew.parse("She seems content.").labels == ("content",)
    assert dfew.parse("I can't tell whether he is happy or sad.").status is Status.UNPARSED
    assert dfew.parse("I'm afraid I cannot determine the emotion.").status is Status.UNPARSED
    assert dfew.parse("I'm happy to help! The person looks sad.").labels == ("sad",)


def test_chinese_names_map_to_each_dfer_space() -> None:
    assert get_label_space("dfew").parse("情绪：愤怒").labels == ("angry",)
    assert get_label_space("mafw").parse("他并不愤怒，而是感到无助。").labels[0] == "helplessness"
    assert get_label_space("dfew").parse("焦虑").status is Status.OUT_OF_SET  # a MAFW label only


def test_label_spaces_have_their_official_sizes_and_orders() -> None:
    sizes = {name: len(space) for name, space in LABEL_SPACES.items()}
    assert sizes == {"dfew": 7, "ferv39k": 7, "mafw": 11, "emotic": 26, "rafdb": 7, "fer2013": 7}
    assert get_label_space("dfew").labels[:3] == ("happy", "sad", "neutral")  # DFEW's 1, 2, 3
    assert get_label_space("mafw").labels[-4:] == (
        "contempt",
        "anxiety",
        "helplessness",
        "disappointment",
    )
    assert get_label_space("emotic").has_vad and get_label_space("emotic").multi_label


def test_unknown_label_set_names_the_choices() -> None:
    with pytest.raises(InputError, match="unknown label set 'dfw'.*dfew"):
        get_label_space("dfw")
