"""Recipes: YAML files naming a dataset and the steps that reproduce a paper, checked before running.

A recipe is plain data (`yaml.safe_load`); every key keeps the line it was written on, so a
wrong key, step or value is reported as `FILE:LINE: what is wrong; the fix`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from emovlm.errors import InputError
from emovlm.recognizers.base import RECOGNIZERS

KINDS = ("eval", "sweep", "diagnose", "calibrate", "finetune")
"""What a step does: evaluate a recognizer, sweep a setting, diagnose or calibrate a step's
answers, or fine-tune a VLM with a class sampler."""

EXPERIMENTS = ("fps", "shuffle", "msce")

VLM_RECOGNIZERS = frozenset({"vlm", "contextual-vlm", "msce", "caption-llm"})
"""Recognizers that call the VLM named by --backend/--model/--base-url."""

TEXT_LLM_RECOGNIZERS = frozenset({"caption-llm", "narracap-llm"})
"""Recognizers whose text LLM defaults to the same served model (llm_backend, llm_model, ...)."""

_COMMON = {"run", "enabled", "title"}
_STEP_KEYS: dict[str, set[str]] = {
    "eval": {"recognizer", "options", "balanced", "balance_seed", "fit_split"},
    "sweep": {
        "experiment",
        "recognizer",
        "options",
        "values",
        "keyframes",
        "per_gap",
        "variants",
    },
    "diagnose": {"of"},
    "calibrate": {"recognizer", "options", "method", "iterations"},
    "finetune": {"sampler", "options", "train_split", "train_limit", "allow_missing_classes"},
}
_TOP_KEYS = {
    "name",
    "title",
    "paper",
    "published",
    "dataset",
    "defaults",
    "bootstrap",
    "seed",
    "estimate",
    "steps",
}
_DATASET_KEYS = {"name", "split", "fold", "options"}
_ESTIMATE_KEYS = {"family", "height", "width", "seconds", "source_fps", "image_size"}
RECIPES_DIR = "recipes"


class RecipeError(InputError):
    """A recipe that cannot run: the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Step:
    """One step of a recipe, as written (options not yet merged with the defaults or flags)."""

    name: str
    kind: str
    line: int
    spec: Mapping[str, Any]
    enabled: bool = True

    @property
    def recognizer(self) -> str | None:
        """The recognizer the step runs (sweeps of MSCE run vlm and msce)."""
        if self.kind == "sweep" and self.spec.get("experiment") == "msce":
            return "msce"
        if self.kind == "finetune":
            return "vlm"
        return self.spec.get("recognizer")

    @property
    def options(self) -> dict[str, Any]:
        """The recognizer options the step sets itself."""
        return dict(self.spec.get("options") or {})


@dataclass(frozen=True)
class Recipe:
    """A loaded, checked recipe: its file, settings and steps in order."""

    path: Path
    name: str
    title: str
    dataset: Mapping[str, Any]
    steps: tuple[Step, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    published: str | None = None
    bootstrap: int = 1000
    seed: int = 0
    estimate: Mapping[str, Any] = field(default_factory=dict)
    lines: Mapping[tuple[str, ...], int] = field(default_factory=dict)

    def line(self, *path: str) -> int:
        """The line of a key (the nearest enclosing key that has one; 1 for the file)."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def where(self, *path: str) -> str:
        """'FILE:LINE' of a key, for messages."""
        return f"{self.path}:{self.line(*path)}"

    def step(self, name: str) -> Step:
        """A step by name."""
        for step in self.steps:
            if step.name == name:
                return step
        raise RecipeError(
            f"{self.path}: no step {name!r}; its steps are: {', '.join(self.step_names())}"
        )

    def step_names(self) -> list[str]:
        """The steps' names in order."""
        return [s.name for s in self.steps]


def shipped_recipes() -> list[str]:
    """Names of the recipes that ship with emovlm."""
    folder = resources.files("emovlm") / RECIPES_DIR
    return sorted(
        p.name[: -len(".yaml")]
        for p in folder.iterdir()
        if p.name.endswith(".yaml") and p.name != "published.yaml"
    )


def recipe_path(name_or_path: str | Path) -> Path:
    """The file of a shipped recipe name, or the user's own recipe file."""
    given = Path(name_or_path)
    if given.suffix in (".yaml", ".yml") or given.exists():
        if not given.is_file():
            raise RecipeError(
                f"recipe file {given} does not exist; give a file path or one of: "
                f"{', '.join(shipped_recipes())}"
            )
        return given
    shipped = Path(str(resources.files("emovlm") / RECIPES_DIR / f"{name_or_path}.yaml"))
    if not shipped.is_file():
        raise RecipeError(
            f"unknown recipe {str(name_or_path)!r}; choose one of: {', '.join(shipped_recipes())}, "
            "or give the path of your own recipe file (.yaml)"
        )
    return shipped


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Key path → 1-based line of every mapping key in a YAML document."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = (*path, str(key.value))
                lines[here] = key.start_mark.line + 1
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, str(index)))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Read and check a recipe (shipped name or file path); errors name the file and line."""
    path = recipe_path(name_or_path)
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        lines = key_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RecipeError(f"{where}: not valid YAML ({exc}); fix the syntax there") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}:1: a recipe is a mapping with dataset: and steps:")
    draft = Recipe(path=path, name="", title="", dataset={}, steps=(), lines=lines)
    _refuse_unknown(draft, data, _TOP_KEYS, ())
    for required in ("dataset", "steps"):
        if not data.get(required):
            raise RecipeError(f"{path}:1: the recipe has no {required}: section; add one")
    dataset = _mapping(draft, data["dataset"], ("dataset",))
    _refuse_unknown(draft, dataset, _DATASET_KEYS, ("dataset",))
    if "name" not in dataset:
        raise RecipeError(f"{draft.where('dataset')}: dataset: needs a name (e.g. name: dfew)")
    estimate = _mapping(draft, data.get("estimate") or {}, ("estimate",))
    _refuse_unknown(draft, estimate, _ESTIMATE_KEYS, ("estimate",))
    steps = tuple(
        _step(draft, name, spec)
        for name, spec in _mapping(draft, data["steps"], ("steps",)).items()
    )
    recipe = Recipe(
        path=path,
        name=str(data.get("name") or path.stem),
        title=str(data.get("title") or data.get("name") or path.stem),
        dataset=dataset,
        steps=steps,
        defaults=_mapping(draft, data.get("defaults") or {}, ("defaults",)),
        published=data.get("published"),
        bootstrap=_whole(draft, data.get("bootstrap", 1000), ("bootstrap",)),
        seed=_whole(draft, data.get("seed", 0), ("seed",)),
        estimate=estimate,
        lines=lines,
    )
    _check_references(recipe)
    _check_options(recipe)
    return recipe


def _step(recipe: Recipe, name: str, spec: Any) -> Step:
    """One step, its kind and keys checked."""
    where = ("steps", str(name))
    spec = _mapping(recipe, spec, where)
    kind = spec.get("run")
    if kind not in KINDS:
        raise RecipeError(
            f"{recipe.where(*where, 'run') if 'run' in spec else recipe.where(*where)}: step "
            f"{name!r} has run: {kind!r}; set run: to one of {', '.join(KINDS)}"
        )
    _refuse_unknown(recipe, spec, _COMMON | _STEP_KEYS[kind], where)
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RecipeError(f"{recipe.where(*where, 'enabled')}: enabled: takes true or false")
    if kind in ("eval", "calibrate") or (kind == "sweep" and spec.get("experiment") != "msce"):
        recognizer = spec.get("recognizer")
        if recognizer not in RECOGNIZERS.names():
            raise RecipeError(
                f"{recipe.where(*where, 'recognizer')}: step {name!r} has recognizer: "
                f"{recognizer!r}; choose one of: {', '.join(RECOGNIZERS.names())}"
            )
    if kind == "sweep" and spec.get("experiment") not in EXPERIMENTS:
        raise RecipeError(
            f"{recipe.where(*where, 'experiment')}: step {name!r} has experiment: "
            f"{spec.get('experiment')!r}; choose one of: {', '.join(EXPERIMENTS)}"
        )
    if "options" in spec:
        _mapping(recipe, spec["options"], (*where, "options"))
    line = recipe.lines.get(where, 1)
    return Step(str(name), kind, line, spec, enabled)


def _check_references(recipe: Recipe) -> None:
    """A diagnose step names an earlier eval step."""
    seen: dict[str, Step] = {}
    for step in recipe.steps:
        if step.kind == "diagnose":
            of = step.spec.get("of")
            source = seen.get(str(of))
            if source is None or source.kind != "eval":
                earlier = [s.name for s in seen.values() if s.kind == "eval"]
                raise RecipeError(
                    f"{recipe.where('steps', step.name, 'of')}: step {step.name!r} diagnoses "
                    f"{of!r}, which is not an earlier eval step; set of: to one of: "
                    f"{', '.join(earlier) or '(add an eval step before it)'}"
                )
        seen[step.name] = step


def accepted_options(recognizer: str) -> set[str]:
    """The option names a registered recognizer takes."""
    parameters = inspect.signature(RECOGNIZERS.get(recognizer)).parameters
    return {p for p in parameters if p != "label_space"}


def step_recognizers(step: Step) -> list[str]:
    """Every recognizer a step builds (an MSCE sweep builds vlm and msce)."""
    if step.kind == "sweep" and step.spec.get("experiment") == "msce":
        return ["vlm", "msce"]
    return [step.recognizer] if step.recognizer else []


def _check_options(recipe: Recipe) -> None:
    """Step options apply to the step's recognizer; each default applies to some step."""
    used: set[str] = set()
    for step in recipe.steps:
        if step.kind == "finetune":
            _check_finetune_options(recipe, step)
        if step.kind in ("diagnose", "finetune"):
            continue
        accepted: set[str] = set()
        for name in step_recognizers(step):
            accepted |= accepted_options(name)
        used |= accepted
        for key in step.options:
            if key not in accepted:
                raise RecipeError(
                    f"{recipe.where('steps', step.name, 'options', key)}: option {key!r} does not "
                    f"apply to recognizer {'/'.join(step_recognizers(step))} of step "
                    f"{step.name!r}; remove it (see `emovlm eval --help` for the options)"
                )
    for key in recipe.defaults:
        if key not in used:
            raise RecipeError(
                f"{recipe.where('defaults', key)}: default {key!r} applies to no step's "
                "recognizer; remove it or fix its name"
            )


def _check_finetune_options(recipe: Recipe, step: Step) -> None:
    """A finetune step's options are the LoRA and VLM settings of `emovlm finetune`."""
    from dataclasses import fields

    from emovlm.train.finetune_vlm import VLMSettings
    from emovlm.train.lora import LoraSettings

    known = ({f.name for f in fields(LoraSettings)} | {f.name for f in fields(VLMSettings)}) - {
        "sampler",
        "model",
    }
    for key in step.options:
        if key not in known:
            raise RecipeError(
                f"{recipe.where('steps', step.name, 'options', key)}: {key!r} is not a setting "
                f"of LoRA fine-tuning; use: {', '.join(sorted(known))} (the sampler goes in "
                "sampler:, the model is --model)"
            )


def _refuse_unknown(
    recipe: Recipe, data: Mapping[str, Any], allowed: set[str], where: tuple[str, ...]
) -> None:
    for key in data:
        if key not in allowed:
            inside = f" in {'.'.join(where)}" if where else ""
            raise RecipeError(
                f"{recipe.where(*where, str(key))}: unknown key {key!r}{inside}; "
                f"use one of: {', '.join(sorted(allowed))}"
            )


def _mapping(recipe: Recipe, value: Any, where: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecipeError(
            f"{recipe.where(*where)}: {'.'.join(where)} must be a mapping of key: value"
        )
    return {str(k): v for k, v in value.items()}


def _whole(recipe: Recipe, value: Any, where: tuple[str, ...]) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RecipeError(f"{recipe.where(*where)}: {where[-1]} takes a whole number ≥ 0")
    return value
