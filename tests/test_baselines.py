"""Label-prior baselines against their closed forms, on EMOTIC-format data read by the real adapter."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emovlm.data.emotic import EMOTIC
from emovlm.errors import InputError
from emovlm.eval.scoring import score_predictions
from emovlm.labels import get_label_space
from emovlm.recognizers.baselines import (
    MajorityRecognizer,
    RandomRecognizer,
    WeightedRandomRecognizer,
    inclusion_probabilities,
    label_counts,
)
from emovlm.types import Sample

SPACE = get_label_space("emotic")
K = len(SPACE)
CSV_HEADER = (
    "Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age\n"
)
# A skewed label distribution like EMOTIC's: engagement, happiness, anticipation, ... lead.
SKEW = np.array([1.0 / (rank + 1) ** 0.9 for rank in range(K)])


def write_emotic_csv(root: Path, split: str, n: int, seed: int) -> None:
    """root/emotic_pre/<split>.csv in the EMOTIC CSV export format, 1-5 skewed labels per person."""
    rng = random.Random(seed)
    order = list(SPACE.labels)
    random.Random(99).shuffle(order)  # the skew does not follow the label order
    weights = list(SKEW)
    lines = [CSV_HEADER]
    for i in range(n):
        count = rng.randint(1, 5)
        chosen = list(dict.fromkeys(rng.choices(order, weights=weights, k=count)))
        names = ", ".join(f"'{c.title()}'" for c in chosen)
        lines.append(
            f'{i},mscoco/images,img_{i // 2}.jpg,"[640, 480]","[10, 20, 300, 400]",'
            f'"[{names}]","[5, 5, 5]",Male,Adult\n'
        )
    folder = root / "emotic_pre"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.csv").write_text("".join(lines), encoding="utf-8")


@pytest.fixture(scope="module")
def emotic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("emotic")
    write_emotic_csv(root, "train", 1500, seed=1)
    write_emotic_csv(root, "test", 2000, seed=2)
    return root


def _gold(data: EMOTIC) -> tuple[list[Sample], list[tuple[str, ...]]]:
    samples = list(data.samples())
    return samples, [s.labels for s in samples]


def _prevalence(gold: list[tuple[str, ...]]) -> np.ndarray:
    return np.array([sum(lab in g for g in gold) for lab in SPACE.labels]) / len(gold)


def _inside(value: float, interval: list[float]) -> bool:
    return interval[0] <= value <= interval[1]


def test_majority_6_macro_recall_is_exactly_6_of_26(emotic_root: Path) -> None:
    model = MajorityRecognizer(SPACE, k=6)
    model.fit(EMOTIC(emotic_root, split="train"))
    samples, gold = _gold(EMOTIC(emotic_root, split="test"))
    predictions = model.predict(samples)
    counts = label_counts(EMOTIC(emotic_root, split="train").samples(), SPACE)
    top6 = sorted(SPACE.labels, key=lambda lab: -counts[lab])[:6]
    assert all(p.labels == tuple(top6) for p in predictions)
    metrics = score_predictions(gold, predictions, SPACE, n_bootstrap=200)
    assert metrics["macro_recall"] == pytest.approx(6 / 26, abs=1e-12)
    assert metrics["macro_precision"] == pytest.approx(
        _prevalence(gold)[[SPACE.index(lab) for lab in top6]].sum() / K
    )
    assert "map" in metrics  # prior scores give the chance-level mAP


@settings(max_examples=25, deadline=None)
@given(
    gold=st.lists(
        st.sets(st.sampled_from(SPACE.labels), min_size=1, max_size=6), min_size=1, max_size=40
    ),
    k=st.integers(1, 8),
)
def test_majority_recall_is_k_over_K_on_any_data_covering_its_labels(
    gold: list[set[str]], k: int
) -> None:
    samples = [Sample(str(i), Path("x.jpg"), labels=tuple(sorted(g))) for i, g in enumerate(gold)]
    model = MajorityRecognizer(SPACE, k=k)
    model.fit(_InMemory(samples))
    predictions = model.predict(samples)
    covered = {lab for g in gold for lab in g}
    metrics = score_predictions([s.labels for s in samples], predictions, SPACE, n_bootstrap=0)
    hits = sum(lab in covered for lab in predictions[0].labels)
    assert metrics["macro_recall"] == pytest.approx(hits / K)
    if len(covered) >= k:  # fitted on the same data: the k labels all have support
        assert metrics["macro_recall"] == pytest.approx(k / K)


class _InMemory:
    """A minimal dataset: samples() and config()."""

    def __init__(self, samples: list[Sample]) -> None:
        self._samples = samples

    def samples(self) -> list[Sample]:
        return self._samples

    def config(self) -> dict[str, str]:
        return {"split": "memory"}


def test_uniform_random_k_matches_its_closed_form_within_the_bootstrap_interval(
    emotic_root: Path,
) -> None:
    k = 6
    samples, gold = _gold(EMOTIC(emotic_root, split="test"))
    predictions = RandomRecognizer(SPACE, k=k, draw_seed=3).predict(samples)
    assert all(len(set(p.labels)) == k and set(p.labels) <= set(SPACE.labels) for p in predictions)
    metrics = score_predictions(gold, predictions, SPACE, n_bootstrap=10_000)
    ci = metrics["ci"]
    prevalence = _prevalence(gold)
    sizes = np.array([len(g) for g in gold])
    expected = {
        "macro_recall": k / K,
        "macro_precision": prevalence.mean(),
        "macro_f1": np.mean(2 * prevalence * (k / K) / (prevalence + k / K)),
        "hamming": np.mean(sizes + k - 2 * sizes * k / K) / K,
        "subset_accuracy": np.mean(sizes == k) / math.comb(K, k),
    }
    for name, value in expected.items():
        assert _inside(value, ci[name]), (name, value, ci[name])


def test_weighted_random_k_matches_its_closed_form_within_the_bootstrap_interval(
    emotic_root: Path,
) -> None:
    k = 6
    model = WeightedRandomRecognizer(SPACE, k=k, draw_seed=5)
    model.fit(EMOTIC(emotic_root, split="train"))
    pi = model.inclusion()
    assert pi.sum() == pytest.approx(k) and pi.max() <= 1.0
    samples, gold = _gold(EMOTIC(emotic_root, split="test"))
    predictions = model.predict(samples)
    drawn = np.array([[lab in p.labels for lab in SPACE.labels] for p in predictions])
    assert (drawn.sum(axis=1) == k).all()
    frequent = int(np.argmax(pi))
    assert drawn[:, frequent].mean() == pytest.approx(pi[frequent], abs=0.04)
    metrics = score_predictions(gold, predictions, SPACE, n_bootstrap=10_000)
    prevalence = _prevalence(gold)
    golds = np.array([[lab in g for lab in SPACE.labels] for g in gold])
    expected = {
        "macro_recall": k / K,
        "macro_precision": prevalence.mean(),
        "hamming": np.mean(golds * (1 - pi) + ~golds * pi),
    }
    for name, value in expected.items():
        assert _inside(value, metrics["ci"][name]), (name, value, metrics["ci"][name])
    assert metrics["per_class"][SPACE.labels[frequent]]["recall"] == pytest.approx(
        pi[frequent], abs=0.05
    )


def test_random_draws_depend_on_seed_and_sample_only(emotic_root: Path) -> None:
    samples, _ = _gold(EMOTIC(emotic_root, split="test"))
    model = RandomRecognizer(SPACE, k=6, draw_seed=1)
    whole = model.predict(samples[:10])
    one_by_one = [model.predict([s])[0] for s in reversed(samples[:10])][::-1]
    assert [p.labels for p in whole] == [p.labels for p in one_by_one]
    other = RandomRecognizer(SPACE, k=6, draw_seed=2).predict(samples[:10])
    assert [p.labels for p in whole] != [p.labels for p in other]


def test_single_label_spaces_majority_1_is_the_most_frequent_class() -> None:
    dfew = get_label_space("dfew")
    train = [
        Sample(str(i), Path("c.mp4"), labels=(lab,))
        for i, lab in enumerate(["happy"] * 5 + ["sad"] * 3 + ["neutral"] * 2)
    ]
    model = MajorityRecognizer(dfew, k=1)
    model.fit(_InMemory(train))
    test = [
        Sample(f"t{i}", Path("c.mp4"), labels=(lab,))
        for i, lab in enumerate(["happy", "sad", "fear", "happy"])
    ]
    predictions = model.predict(test)
    assert {p.labels for p in predictions} == {("happy",)}
    metrics = score_predictions([s.labels for s in test], predictions, dfew, n_bootstrap=0)
    assert metrics["war"] == pytest.approx(0.5) and metrics["uar"] == pytest.approx(1 / 3)


def test_uniform_random_top_1_on_a_single_label_space_is_uniform() -> None:
    dfew = get_label_space("dfew")
    samples = [Sample(str(i), Path("c.mp4"), labels=("happy",)) for i in range(3500)]
    tops = [p.top for p in RandomRecognizer(dfew, k=3).predict(samples)]
    shares = np.array([tops.count(lab) for lab in dfew.labels]) / len(tops)
    assert np.abs(shares - 1 / 7).max() < 0.03


def test_inclusion_probabilities_cap_at_one_and_sum_to_k() -> None:
    pi = inclusion_probabilities([100, 1, 1, 1, 1, 0], 3)
    assert pi[0] == 1.0 and pi[-1] == 0.0 and pi.sum() == pytest.approx(3)
    assert inclusion_probabilities([5, 0, 2], 4).tolist() == [1.0, 0.0, 1.0]


def test_majority_without_fit_says_how_to_fit() -> None:
    with pytest.raises(InputError, match="fit-split"):
        MajorityRecognizer(SPACE).predict([Sample("a", Path("a.jpg"), labels=("peace",))])
    with pytest.raises(InputError, match="--k must be at least 1"):
        RandomRecognizer(SPACE, k=0)
