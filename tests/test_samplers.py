"""Class samplers judged by the class distributions their draws produce."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emovlm.errors import InputError
from emovlm.labels import get_label_space
from emovlm.train.samplers import SAMPLERS, make_sampler

DFEW = get_label_space("dfew")
EMOTIC = get_label_space("emotic")
LONG_TAIL = {"happy": 400, "sad": 100, "neutral": 25}


def _labels(counts: dict[str, int]) -> list[tuple[str, ...]]:
    return [(label,) for label, n in counts.items() for _ in range(n)]


def _drawn_shares(sampler_name: str, epoch: int = 0, epochs: int = 1, n_epochs: int = 40) -> dict:
    """Share of each label among the samples drawn over `n_epochs` epochs' worth of draws."""
    labels = _labels(LONG_TAIL)
    sampler = make_sampler(sampler_name, labels, DFEW, epochs=epochs)
    rng = np.random.default_rng(7)
    drawn = np.concatenate([sampler.draw(epoch, rng) for _ in range(n_epochs)])
    names = [labels[i][0] for i in drawn]
    return {label: names.count(label) / len(names) for label in LONG_TAIL}


def test_instance_sampling_keeps_the_natural_distribution_and_sees_every_sample_once() -> None:
    labels = _labels(LONG_TAIL)
    order = make_sampler("instance", labels, DFEW).draw(0, np.random.default_rng(0))
    assert sorted(order) == list(range(len(labels)))  # a shuffled pass, no repeats
    assert _drawn_shares("instance") == pytest.approx(
        {"happy": 0.762, "sad": 0.190, "neutral": 0.048}, abs=0.001
    )


def test_class_balanced_sampling_draws_every_class_equally_often() -> None:
    shares = _drawn_shares("class-balanced")
    assert shares == pytest.approx(dict.fromkeys(LONG_TAIL, 1 / 3), abs=0.01)


def test_square_root_sampling_draws_classes_by_the_root_of_their_size() -> None:
    roots = {label: np.sqrt(n) for label, n in LONG_TAIL.items()}  # 20 : 10 : 5
    expected = {label: r / sum(roots.values()) for label, r in roots.items()}
    assert _drawn_shares("square-root") == pytest.approx(expected, abs=0.01)


def test_progressive_sampling_moves_from_natural_to_balanced_over_training() -> None:
    sampler = make_sampler("progressive", _labels(LONG_TAIL), DFEW, epochs=10)
    natural, balanced = np.array([400, 100, 25]) / 525, np.full(3, 1 / 3)
    index = [DFEW.index(label) for label in LONG_TAIL]
    for epoch in (0, 3, 9):
        t = epoch / 10
        assert sampler.class_shares(epoch)[index] == pytest.approx((1 - t) * natural + t * balanced)
    first = _drawn_shares("progressive", epoch=0, epochs=10)
    last = _drawn_shares("progressive", epoch=9, epochs=10)
    assert first["neutral"] == pytest.approx(25 / 525, abs=0.01)
    assert last["neutral"] == pytest.approx(0.9 / 3 + 0.1 * 25 / 525, abs=0.01)


def test_multi_label_samples_count_under_their_rarest_label() -> None:
    labels = (
        [("happiness", "engagement")] * 60 + [("engagement",)] * 30 + [("pain", "engagement")] * 3
    )
    sampler = make_sampler("class-balanced", labels, EMOTIC)
    classes = [EMOTIC.labels[c] for c in sampler.sample_class]
    assert classes == ["happiness"] * 60 + ["engagement"] * 30 + ["pain"] * 3
    drawn = np.concatenate([sampler.draw(0, np.random.default_rng(s)) for s in range(60)])
    pain_share = np.mean([labels[i] == ("pain", "engagement") for i in drawn])
    assert pain_share == pytest.approx(1 / 3, abs=0.02)  # 3 % of the data, a third of the draws


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(1, 50), min_size=1, max_size=7),
    name=st.sampled_from(SAMPLERS),
    epoch=st.integers(0, 9),
)
def test_every_sampler_gives_a_distribution_over_the_samples(counts, name, epoch) -> None:
    labels = [(DFEW.labels[j],) for j, n in enumerate(counts) for _ in range(n)]
    sampler = make_sampler(name, labels, DFEW, epochs=10)
    probabilities = sampler.probabilities(epoch)
    assert probabilities.min() > 0
    assert probabilities.sum() == pytest.approx(1.0)
    order = sampler.draw(epoch, np.random.default_rng(0))
    assert len(order) == len(labels) and order.min() >= 0 and order.max() < len(labels)


def test_bad_names_and_labels_are_refused() -> None:
    with pytest.raises(InputError, match="unknown sampler 'balanced'.*class-balanced"):
        make_sampler("balanced", [("happy",)], DFEW)
    with pytest.raises(InputError, match="'joy' is not in label set 'dfew'"):
        make_sampler("instance", [("happy",), ("joy",)], DFEW)
    with pytest.raises(InputError, match="has no label"):
        make_sampler("instance", [("happy",), ()], DFEW)
