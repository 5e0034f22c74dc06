"""What each step of a plan would cost a served VLM: requests and visual tokens, before any call.

Counts follow the project's visual-token rules (backends/visual_tokens.py) for the recipe's
`estimate:` family, frame size and clip length, over the number of samples each step reads.
They are upper bounds: requests a step shares with another (the same frames and prompt) are
answered once from the response cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emovlm.backends.visual_tokens import fitted, frames_tokens, get_family, token_table
from emovlm.data.balanced import balanced_selection, parse_per_class
from emovlm.frames import parse_sampler
from emovlm.reproduce.plan import Plan
from emovlm.reproduce.recipe import Step

DEFAULT_CLIP = {
    "family": "qwen2.5-vl",
    "height": 224,
    "width": 224,
    "seconds": 3.0,
    "source_fps": 25.0,
}
"""The clip assumed when a recipe's `estimate:` leaves a value out."""


@dataclass(frozen=True)
class Estimate:
    """One step's cost: samples, VLM requests and visual tokens (all samples together)."""

    step: str
    kind: str
    samples: int
    requests: int
    visual_tokens: int
    note: str = ""


@dataclass(frozen=True)
class _Clip:
    family: Any
    frame_count: int
    fps: float
    height: int
    width: int
    image_size: int | None
    settings: Mapping[str, Any]


def estimate_plan(plan: Plan) -> list[Estimate]:
    """Requests and visual tokens of every chosen step."""
    return [estimate_step(plan, step) for step in plan.steps]


def estimate_step(plan: Plan, step: Step) -> Estimate:
    """Requests and visual tokens of one step over its samples."""
    n = _samples(plan, step)
    options = plan.options(step)
    clip = _clip(plan, options)
    if step.kind == "sweep":
        calls, tokens = _sweep(step, options, clip)
        return Estimate(step.name, step.kind, n, n * calls, n * tokens)
    if step.kind in ("diagnose", "finetune"):
        note = "reads a finished step" if step.kind == "diagnose" else "local LoRA training"
        return Estimate(step.name, step.kind, n if step.kind == "finetune" else 0, 0, 0, note)
    calls, tokens = _per_sample(str(step.recognizer), options, clip)
    note = "label scores (one request each)" if options.get("mode") == "score" else ""
    return Estimate(step.name, step.kind, n, n * calls, n * tokens, note)


def _samples(plan: Plan, step: Step) -> int:
    """How many samples the step reads (a balanced subset's size, computed from the labels)."""
    if step.kind == "finetune":
        data = plan.dataset(str(step.spec.get("train_split", "train")))
        limit = step.spec.get("train_limit")
        count = sum(1 for _ in data.samples())
        return min(count, int(limit)) if limit else count
    data = plan.dataset()
    if step.kind == "eval" and step.spec.get("balanced") is not None:
        labels = [s.labels[0] for s in data.samples()]
        selection = balanced_selection(
            labels,
            data.label_space,
            parse_per_class(step.spec["balanced"]),
            int(step.spec.get("balance_seed", 0)),
        )
        return len(selection.indices)
    return sum(1 for _ in data.samples())


def _clip(plan: Plan, options: Mapping[str, Any]) -> _Clip:
    settings = {**DEFAULT_CLIP, **plan.recipe.estimate}
    image_size = settings.get("image_size", options.get("image_size", 448))
    return _Clip(
        family=get_family(str(settings["family"])),
        frame_count=max(1, round(float(settings["seconds"]) * float(settings["source_fps"]))),
        fps=float(settings["source_fps"]),
        height=int(settings["height"]),
        width=int(settings["width"]),
        image_size=int(image_size) if image_size else None,
        settings=settings,
    )


def _frames(frames: str, clip: _Clip) -> int:
    """How many frames a sampler spec picks from the clip."""
    return len(parse_sampler(frames).indices(clip.frame_count, clip.fps))


def _per_sample(recognizer: str, options: Mapping[str, Any], clip: _Clip) -> tuple[int, int]:
    """(VLM requests, visual tokens) one sample costs a recognizer with these options."""
    h, w = fitted(clip.height, clip.width, clip.image_size)
    if recognizer in ("vlm", "contextual-vlm"):
        frames = _frames(str(options.get("frames", "uniform:8")), clip)
        views = 2 if options.get("person") == "crop+full" else 1
        return 1, views * frames_tokens(clip.family, frames, h, w)
    if recognizer == "caption-llm":
        frames = _frames(str(options.get("frames", "uniform:8")), clip)
        return 2, frames_tokens(clip.family, frames, h, w)
    if recognizer == "narracap-llm":
        return 1, 0
    if recognizer == "msce":
        return _msce(options, clip)
    return 0, 0


def _msce(options: Mapping[str, Any], clip: _Clip) -> tuple[int, int]:
    """MSCE's plan from the token table: stage 2, plus one describer call per gap for a VLM."""
    rows = token_table(
        [clip.family.name],
        height=clip.height,
        width=clip.width,
        duration=clip.frame_count / clip.fps,
        source_fps=clip.fps,
        rates=[],
        keyframes=int(options.get("keyframes", 8)),
        per_gap=int(options.get("per_gap", 4)),
        image_size=clip.image_size,
    )
    describer = str(options.get("describer", "specialist"))
    row = next(r for r in rows if r.setting.endswith(f"/{describer}"))
    return row.calls, row.tokens[clip.family.name]


def _sweep(step: Step, options: Mapping[str, Any], clip: _Clip) -> tuple[int, int]:
    """(requests, tokens) per sample summed over the sweep's settings."""
    spec = step.spec
    recognizer = str(step.recognizer)
    points: list[tuple[str, dict[str, Any]]] = []
    if spec["experiment"] == "fps":
        points = [(recognizer, {**options, "frames": f"fps:{v}"}) for v in spec.get("values", [])]
    elif spec["experiment"] == "shuffle":
        points = [(recognizer, dict(options))] * (1 + len(spec.get("values", [0])))
    else:
        keyframes, per_gap = int(spec.get("keyframes", 8)), int(spec.get("per_gap", 4))
        for variant in spec.get("variants") or ["sparse", "msce-vlm", "msce-specialist"]:
            if variant == "sparse":
                points.append(("vlm", {**options, "frames": f"uniform:{keyframes}"}))
            elif variant == "dense":
                dense = keyframes + (keyframes - 1) * per_gap
                points.append(("vlm", {**options, "frames": f"uniform:{dense}"}))
            else:
                describer = variant.split("-")[1]
                points.append(
                    ("msce", {**options, "keyframes": keyframes, "per_gap": per_gap,
                              "describer": describer})
                )  # fmt: skip
    costs = [_per_sample(name, point, clip) for name, point in points]
    return sum(c for c, _ in costs), sum(t for _, t in costs)
