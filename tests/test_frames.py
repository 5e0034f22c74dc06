"""Temporal samplers: the index lists users get for a clip length, fps and sampler spec."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emovlm.errors import InputError
from emovlm.frames import (
    SAMPLER_FORMS,
    KeyframePlan,
    Sampler,
    all_frames,
    at_fps,
    keyframes_with_gaps,
    parse_sampler,
    shuffled,
    uniform,
)

counts = st.integers(min_value=0, max_value=3000)
rates = st.floats(min_value=1.0, max_value=120.0, allow_nan=False)
fast = settings(max_examples=150, deadline=None)


def assert_sorted_unique_in_range(indices: list[int], frame_count: int) -> None:
    """Indices are strictly increasing and inside [0, frame_count)."""
    assert indices == sorted(set(indices))
    assert all(0 <= index < frame_count for index in indices)


@fast
@given(counts, st.integers(min_value=1, max_value=400))
def test_uniform_gives_min_k_count_sorted_unique_indices(frame_count: int, k: int) -> None:
    indices = uniform(frame_count, k)
    assert len(indices) == min(k, frame_count)
    assert_sorted_unique_in_range(indices, frame_count)


@fast
@given(st.integers(min_value=1, max_value=3000), st.integers(min_value=1, max_value=400))
def test_uniform_picks_the_centre_of_each_equal_segment(frame_count: int, k: int) -> None:
    if k >= frame_count:
        assert uniform(frame_count, k) == list(range(frame_count))
        return
    segment = frame_count / k
    for number, index in enumerate(uniform(frame_count, k)):
        assert abs(index - (number + 0.5) * segment) <= 1


def test_uniform_examples() -> None:
    assert uniform(75, 8) == [4, 14, 23, 32, 42, 51, 60, 70]
    assert uniform(10, 2) == [2, 7]
    assert uniform(1, 8) == [0]
    assert uniform(3, 8) == [0, 1, 2]
    assert uniform(0, 8) == []


@fast
@given(counts, rates, st.floats(min_value=0.1, max_value=150.0, allow_nan=False))
def test_at_fps_spaces_frames_by_fps_over_target(
    frame_count: int, fps: float, target_fps: float
) -> None:
    indices = at_fps(frame_count, fps, target_fps)
    assert_sorted_unique_in_range(indices, frame_count)
    if target_fps >= fps:
        assert indices == list(range(frame_count))
        return
    step = fps / target_fps
    assert indices[:1] == ([0] if frame_count else [])
    assert all(abs((later - earlier) - step) < 1 for earlier, later in pairwise(indices))
    # one frame per 1/target_fps seconds over the clip's duration, no more, no fewer
    assert abs(len(indices) - frame_count / step) <= 1


def test_at_fps_examples() -> None:
    assert at_fps(75, 25, 5) == list(range(0, 75, 5))
    assert at_fps(10, 30, 12) == [0, 2, 5, 7]
    assert at_fps(100, 1, 0.1) == list(range(0, 100, 10))  # decimal settings step exactly
    assert at_fps(12, 29.97, 9.99) == [0, 3, 6, 9]
    assert at_fps(75, 25, 25) == list(range(75))
    assert at_fps(75, 25, 60) == list(range(75))
    assert at_fps(0, 25, 5) == []


def test_all_frames() -> None:
    assert all_frames(4) == [0, 1, 2, 3]
    assert all_frames(0) == []


@fast
@given(counts, st.integers(min_value=1, max_value=64), st.integers(min_value=0, max_value=12))
def test_keyframe_plan_interleaves_keyframes_and_gaps_in_time_order(
    frame_count: int, keyframes: int, per_gap: int
) -> None:
    plan = keyframes_with_gaps(frame_count, keyframes, per_gap)
    assert plan.keyframes == uniform(frame_count, keyframes)
    assert len(plan.gaps) == max(len(plan.keyframes) - 1, 0)
    for start, gap, end in zip(plan.keyframes, plan.gaps, plan.keyframes[1:], strict=False):
        assert all(start < index < end for index in gap)
        assert gap == sorted(set(gap))
        assert len(gap) == min(per_gap, end - start - 1)
    assert_sorted_unique_in_range(plan.indices, frame_count)
    assert set(plan.keyframes).isdisjoint(index for gap in plan.gaps for index in gap)
    assert len(plan.indices) == len(plan.keyframes) + sum(len(gap) for gap in plan.gaps)


def test_keyframe_plan_spreads_in_between_frames_evenly() -> None:
    plan = keyframes_with_gaps(100, 2, per_gap=4)
    assert plan == KeyframePlan(keyframes=[25, 75], gaps=[[35, 45, 55, 65]])
    short = keyframes_with_gaps(9, 3, per_gap=4)
    assert short == KeyframePlan(keyframes=[1, 4, 7], gaps=[[2, 3], [5, 6]])
    assert keyframes_with_gaps(1, 8) == KeyframePlan(keyframes=[0], gaps=[])
    assert keyframes_with_gaps(0, 8) == KeyframePlan(keyframes=[], gaps=[])


@fast
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=300), st.integers(0, 2**32))
def test_shuffled_is_a_permutation_fixed_by_its_seed(indices: list[int], seed: int) -> None:
    order = shuffled(indices, seed)
    assert sorted(order) == sorted(indices)
    assert shuffled(indices, seed) == order


def test_shuffled_is_reproducible_across_runs_and_differs_across_seeds() -> None:
    # A frozen example: a change here changes every shuffle-test result users have recorded.
    assert shuffled(range(10), 0) == [7, 8, 1, 5, 3, 4, 2, 0, 9, 6]
    assert shuffled(range(10), 1) != shuffled(range(10), 0)
    assert shuffled([], 3) == []


@pytest.mark.parametrize(
    ("function", "arguments"),
    [
        (uniform, (10, 0)),
        (uniform, (-1, 4)),
        (at_fps, (10, 0.0, 5.0)),
        (at_fps, (10, 25.0, 0.0)),
        (at_fps, (10, 25.0, float("nan"))),
        (all_frames, (-3,)),
        (keyframes_with_gaps, (10, 0)),
        (keyframes_with_gaps, (10, 3, -1)),
    ],
)
def test_samplers_reject_meaningless_settings(function, arguments) -> None:
    with pytest.raises(InputError):
        function(*arguments)


@pytest.mark.parametrize(
    ("spec", "sampler"),
    [
        ("uniform:8", Sampler("uniform", 8)),
        ("fps:5", Sampler("fps", 5)),
        ("fps:2.5", Sampler("fps", 2.5)),
        ("all", Sampler("all")),
        ("msce:8x4", Sampler("msce", 8, per_gap=4)),
        ("msce:6x0", Sampler("msce", 6, per_gap=0)),
        ("msce:8", Sampler("msce", 8, per_gap=4)),
        ("fps:5+shuffle:0", Sampler("fps", 5, shuffle_seed=0)),
        ("all+shuffle:42", Sampler("all", shuffle_seed=42)),
        (" Uniform:16 ", Sampler("uniform", 16)),
    ],
)
def test_parse_sampler_reads_every_documented_form(spec: str, sampler: Sampler) -> None:
    assert parse_sampler(spec) == sampler


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "uniform",
        "uniform:",
        "uniform:0",
        "uniform:2.5",
        "uniform:8x4",
        "fps:0",
        "fps:-5",
        "all:3",
        "msce:0x4",
        "random:8",
        "uniform:8+shuffle",
        "uniform:8+shuffle:-1",
        "uniform:8 shuffle:1",
    ],
)
def test_parse_sampler_rejects_bad_specs_listing_the_forms(spec: str) -> None:
    with pytest.raises(InputError) as raised:
        parse_sampler(spec)
    assert repr(spec) in str(raised.value)
    assert SAMPLER_FORMS in str(raised.value)


samplers = st.one_of(
    st.builds(Sampler, st.just("uniform"), st.integers(1, 512).map(float)),
    st.builds(Sampler, st.just("fps"), st.floats(1e-6, 1e20, allow_nan=False)),
    st.builds(Sampler, st.just("all")),
    st.builds(Sampler, st.just("msce"), st.integers(1, 64).map(float), per_gap=st.integers(0, 16)),
).flatmap(
    lambda base: st.builds(
        Sampler,
        st.just(base.kind),
        st.just(base.value),
        st.just(base.per_gap),
        st.none() | st.integers(0, 2**31),
    )
)


@fast
@given(samplers)
def test_sampler_spec_round_trips(sampler: Sampler) -> None:
    assert parse_sampler(str(sampler)) == sampler


@fast
@given(samplers, counts, rates)
def test_sampler_indices_follow_its_kind_and_shuffle(
    sampler: Sampler, frame_count: int, fps: float
) -> None:
    indices = sampler.indices(frame_count, fps)
    unshuffled = Sampler(sampler.kind, sampler.value, sampler.per_gap).indices(frame_count, fps)
    assert_sorted_unique_in_range(unshuffled, frame_count)
    if sampler.shuffle_seed is None:
        assert indices == unshuffled
    else:
        assert indices == shuffled(unshuffled, sampler.shuffle_seed)


def test_sampler_indices_match_the_plain_functions() -> None:
    assert parse_sampler("uniform:8").indices(75, 25) == uniform(75, 8)
    assert parse_sampler("fps:5").indices(75, 25) == at_fps(75, 25, 5)
    assert parse_sampler("all").indices(5, 25) == [0, 1, 2, 3, 4]
    assert parse_sampler("msce:3x2").indices(30, 25) == keyframes_with_gaps(30, 3, 2).indices


def test_only_msce_has_a_keyframe_plan_and_it_is_never_shuffled() -> None:
    msce = parse_sampler("msce:4x2+shuffle:7")
    assert msce.plan(40, 25) == keyframes_with_gaps(40, 4, 2)
    assert msce.indices(40, 25) == shuffled(keyframes_with_gaps(40, 4, 2).indices, 7)
    assert parse_sampler("uniform:8").plan(40, 25) is None


def test_sampler_rejects_bad_fields_when_built_directly() -> None:
    with pytest.raises(InputError):
        Sampler("bogus", 3)
    with pytest.raises(InputError):
        Sampler("uniform")
    with pytest.raises(InputError):
        Sampler("msce", 4, per_gap=-1)
