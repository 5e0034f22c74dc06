"""Label log-probabilities recovered from a server's top log-probabilities along one answer."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emovlm.backends.top_logprobs import TokenStep, label_logprobs_from_top
from emovlm.labels import get_label_space
from openai_server import label_distribution, logprob_content, pieces

MAFW = get_label_space("mafw").labels
DFEW = get_label_space("dfew").labels


def _steps(answer: str, dist: dict[str, float], top_n: int = 20) -> list[TokenStep]:
    return [
        TokenStep(
            item["token"], item["logprob"], {a["token"]: a["logprob"] for a in item["top_logprobs"]}
        )
        for item in logprob_content(answer, dist, top_n)
    ]


def _first_piece_unique(label: str, labels: tuple[str, ...]) -> bool:
    return sum(pieces(other)[0] == pieces(label)[0] for other in labels) == 1


@settings(max_examples=60, deadline=None)
@given(
    labels=st.sampled_from([DFEW, MAFW]),
    weights=st.lists(st.floats(0.01, 1.0), min_size=11, max_size=11),
)
def test_answer_and_labels_with_a_unique_first_token_are_exact(
    labels: tuple[str, ...], weights: list[float]
) -> None:
    total = sum(weights[: len(labels)])
    dist = {lab: w / total for lab, w in zip(labels, weights, strict=False)}
    answer = max(dist, key=dist.get)
    got = label_logprobs_from_top(_steps(answer, dist), labels)
    assert got[answer] == pytest.approx(math.log(dist[answer]))
    for label in labels:
        if _first_piece_unique(label, labels) or pieces(label)[0] == pieces(answer)[0]:
            assert got[label] == pytest.approx(math.log(dist[label])), label


def test_labels_sharing_a_token_off_the_answer_path_split_its_mass() -> None:
    dist = label_distribution("happiness", MAFW)
    got = label_logprobs_from_top(_steps("happiness", dist), MAFW)
    shared = dist["disgust"] + dist["disappointment"]  # both start with "dis"
    assert math.exp(got["disgust"]) == pytest.approx(shared / 2)
    assert math.exp(got["disappointment"]) == pytest.approx(shared / 2)


def test_unlisted_labels_share_the_leftover_mass_below_every_listed_token() -> None:
    dist = label_distribution("happy", DFEW)
    steps = _steps("happy", dist, top_n=3)
    got = label_logprobs_from_top(steps, DFEW)
    listed = {t for t in steps[0].top}
    lowest = min(steps[0].top.values())
    unlisted = [lab for lab in DFEW if pieces(lab)[0] not in listed]
    leftover = 1 - sum(math.exp(v) for v in steps[0].top.values())
    assert unlisted
    for label in unlisted:
        assert got[label] <= lowest + 1e-12
        assert math.exp(got[label]) == pytest.approx(
            min(math.exp(lowest), leftover / len(unlisted))
        )


def test_case_leading_space_and_trailing_punctuation_are_ignored() -> None:
    steps = [
        TokenStep(" ", math.log(0.9), {" ": math.log(0.9), "Sad": math.log(0.05)}),
        TokenStep("Hap", math.log(0.7), {"Hap": math.log(0.7), "Sad": math.log(0.2)}),
        TokenStep("py.", math.log(0.99), {"py.": math.log(0.99)}),
    ]
    got = label_logprobs_from_top(steps, ("happy", "sad", "fear"))
    assert got["happy"] == pytest.approx(math.log(0.9 * 0.7 * 0.99))
    assert got["sad"] == pytest.approx(math.log(0.9 * 0.2))
    assert got["fear"] < got["sad"]


def test_an_answer_cut_off_inside_a_label_keeps_what_was_generated() -> None:
    steps = [TokenStep("sur", math.log(0.8), {"sur": math.log(0.8), "hap": math.log(0.1)})]
    got = label_logprobs_from_top(steps, ("surprise", "happy"))
    assert got["surprise"] == pytest.approx(math.log(0.8))
    assert got["happy"] == pytest.approx(math.log(0.1))


def test_no_steps_gives_every_label_the_same_floor() -> None:
    got = label_logprobs_from_top([], ("a", "b"))
    assert got["a"] == got["b"] < -20
