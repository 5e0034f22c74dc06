"""Temporal samplers: pure functions from (frame count, fps, settings) to frame indices."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise

from emovlm.errors import InputError

SAMPLER_FORMS = "uniform:K, fps:F, all, msce:KxG (or msce:K), each optionally +shuffle:SEED"
"""The sampler spec forms parse_sampler accepts, for help texts and error messages."""

DEFAULT_PER_GAP = 4
"""In-between frames per gap of an MSCE plan when the spec does not say."""

_KINDS = ("uniform", "fps", "all", "msce")
_SPEC = re.compile(
    r"(?P<kind>uniform|fps|all|msce)"
    r"(?::(?P<value>\d+(?:\.\d+)?(?:e[+-]?\d+)?)(?:x(?P<per_gap>\d+))?)?"
    r"(?:\+shuffle:(?P<seed>\d+))?"
)


def uniform(frame_count: int, k: int) -> list[int]:
    """`k` evenly spaced frames, the centre of each of `k` equal segments; all if k >= count."""
    _check_count(frame_count)
    _check_positive("uniform k", k)
    if k >= frame_count:
        return all_frames(frame_count)
    return [((2 * segment + 1) * frame_count) // (2 * k) for segment in range(k)]


def at_fps(frame_count: int, fps: float, target_fps: float) -> list[int]:
    """One frame per 1/target_fps seconds from frame 0 on; all frames if target_fps >= fps."""
    _check_count(frame_count)
    _check_positive("fps", fps)
    _check_positive("target fps", target_fps)
    if target_fps >= fps:
        return all_frames(frame_count)
    step = _decimal(fps) / _decimal(target_fps)  # exact: 25/5 and 1/0.1 step by 5 and 10
    taken = -(-frame_count * step.denominator // step.numerator)  # ceil(frame_count / step)
    return [n * step.numerator // step.denominator for n in range(taken)]


def all_frames(frame_count: int) -> list[int]:
    """Every frame index, 0 to frame_count - 1."""
    _check_count(frame_count)
    return list(range(frame_count))


@dataclass(frozen=True)
class KeyframePlan:
    """Keyframes and, for each pair of neighbouring keyframes, the frames chosen between them.

    `gaps[i]` holds indices strictly between `keyframes[i]` and `keyframes[i + 1]`.
    """

    keyframes: list[int]
    gaps: list[list[int]]

    @property
    def indices(self) -> list[int]:
        """Every planned frame, keyframes and in-between frames, in time order."""
        ordered = list(self.keyframes[:1])
        for gap, keyframe in zip(self.gaps, self.keyframes[1:], strict=True):
            ordered += [*gap, keyframe]
        return ordered


def keyframes_with_gaps(
    frame_count: int, keyframes: int, per_gap: int = DEFAULT_PER_GAP
) -> KeyframePlan:
    """`keyframes` uniform keyframes plus `per_gap` evenly spaced frames inside each gap.

    A gap holding fewer than `per_gap` frames gives all of them.
    """
    if per_gap < 0:
        raise InputError(f"per_gap must be 0 or more, got {per_gap}.")
    chosen = uniform(frame_count, keyframes)
    gaps = [_between(start, end, per_gap) for start, end in pairwise(chosen)]
    return KeyframePlan(chosen, gaps)


def shuffled(indices: Sequence[int], seed: int) -> list[int]:
    """A permutation of `indices` that is the same for the same seed on every run and machine."""
    order = list(indices)
    random.Random(seed).shuffle(order)
    return order


@dataclass(frozen=True)
class Sampler:
    """A named sampling rule ("uniform", "fps", "all", "msce") with its settings.

    `value` is k for uniform, the target fps for fps, the keyframe count for msce, None for
    all; `per_gap` is used by msce only; `shuffle_seed`, when set, shuffles the indices.
    """

    kind: str
    value: float | None = None
    per_gap: int = DEFAULT_PER_GAP
    shuffle_seed: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InputError(f"unknown sampler kind {self.kind!r}; use one of: {SAMPLER_FORMS}.")
        if self.kind == "all":
            if self.value is not None:
                raise InputError("the 'all' sampler takes no value.")
        elif self.value is None or not (math.isfinite(self.value) and self.value > 0):
            raise InputError(f"sampler {self.kind!r} needs a positive value, got {self.value!r}.")
        elif self.kind != "fps" and not float(self.value).is_integer():
            raise InputError(f"sampler {self.kind!r} needs a whole number, got {self.value!r}.")
        if self.per_gap < 0:
            raise InputError(f"per_gap must be 0 or more, got {self.per_gap}.")
        if self.shuffle_seed is not None and self.shuffle_seed < 0:
            raise InputError(f"shuffle seed must be 0 or more, got {self.shuffle_seed}.")

    def indices(self, frame_count: int, fps: float) -> list[int]:
        """Frame indices for a source of `frame_count` frames at `fps`, shuffled if asked."""
        if self.kind == "uniform":
            chosen = uniform(frame_count, int(self.value))
        elif self.kind == "fps":
            chosen = at_fps(frame_count, fps, self.value)
        elif self.kind == "msce":
            chosen = self.plan(frame_count, fps).indices
        else:
            chosen = all_frames(frame_count)
        return chosen if self.shuffle_seed is None else shuffled(chosen, self.shuffle_seed)

    def plan(self, frame_count: int, fps: float) -> KeyframePlan | None:
        """The keyframe plan of an msce sampler (in time order, never shuffled); None otherwise."""
        if self.kind != "msce":
            return None
        return keyframes_with_gaps(frame_count, int(self.value), self.per_gap)

    def __str__(self) -> str:
        """The spec string, which parse_sampler turns back into an equal Sampler."""
        if self.kind == "all":
            text = "all"
        elif self.kind == "msce":
            text = f"msce:{int(self.value)}x{self.per_gap}"
        else:
            text = f"{self.kind}:{_number(self.value)}"
        return text if self.shuffle_seed is None else f"{text}+shuffle:{self.shuffle_seed}"


def parse_sampler(spec: str) -> Sampler:
    """Parse "uniform:8", "fps:5", "all", "msce:8x4", each optionally + "+shuffle:SEED"."""
    match = _SPEC.fullmatch(spec.strip().lower())
    if match is None:
        raise InputError(
            f"cannot read sampler spec {spec!r}; use one of: {SAMPLER_FORMS} "
            "(e.g. uniform:8, fps:5+shuffle:0, msce:8x4)."
        )
    kind, value, per_gap, seed = match.group("kind", "value", "per_gap", "seed")
    if per_gap is not None and kind != "msce":
        raise InputError(
            f"sampler spec {spec!r}: only msce takes KxG. Use one of: {SAMPLER_FORMS}."
        )
    try:
        return Sampler(
            kind,
            float(value) if value is not None else None,
            int(per_gap) if per_gap is not None else DEFAULT_PER_GAP,
            int(seed) if seed is not None else None,
        )
    except InputError as error:
        raise InputError(f"sampler spec {spec!r}: {error} Use one of: {SAMPLER_FORMS}.") from None


def _between(start: int, end: int, per_gap: int) -> list[int]:
    """Up to `per_gap` evenly spaced indices strictly between `start` and `end`."""
    inside = end - start - 1
    if inside <= per_gap:
        return list(range(start + 1, end))
    return [start + ((n + 1) * (end - start)) // (per_gap + 1) for n in range(per_gap)]


def _decimal(value: float) -> Fraction:
    """The number as written in decimal (0.1 is 1/10, not the nearest binary float)."""
    return Fraction(repr(float(value)))


def _number(value: float) -> str:
    """A spec number: whole values without a decimal point, others as Python writes them."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_count(frame_count: int) -> None:
    """Reject a negative frame count."""
    if frame_count < 0:
        raise InputError(f"frame count must be 0 or more, got {frame_count}.")


def _check_positive(name: str, value: float) -> None:
    """Reject a value that is not a finite number above zero."""
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a positive number, got {value!r}.")
