"""A recipe made concrete: the user's dataset root and model, each step's options, all checked.

Everything a step needs is resolved and checked here, before any step runs: the steps chosen by
--only/--skip, each step's recognizer options (recipe defaults < step options < --backend,
--model, --base-url < --option), the dataset's splits on disk, and the model or server.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from emovlm.data.base import Dataset, open_dataset
from emovlm.errors import EmovlmError
from emovlm.recognizers.base import RECOGNIZERS
from emovlm.reproduce.recipe import (
    TEXT_LLM_RECOGNIZERS,
    VLM_RECOGNIZERS,
    Recipe,
    RecipeError,
    Step,
    accepted_options,
    step_recognizers,
)

TRANSPORT_OPTIONS = frozenset(
    {
        "base_url",
        "api_key_env",
        "concurrency",
        "timeout",
        "max_retries",
        "cache",
        "cache_dir",
        "llm_base_url",
        "llm_api_key_env",
        "describer_base_url",
        "device",
    }
)
"""Options that change how answers are fetched, not what they are: left out of a step's
fingerprint, so a restarted server on another port does not redo finished steps."""


@dataclass(frozen=True)
class Target:
    """What the user points the recipe at: dataset root, model, and option overrides."""

    root: Path
    backend: str | None = None
    model: str | None = None
    base_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = None

    def vlm_options(self) -> dict[str, Any]:
        """--backend, --model, --base-url as recognizer options (those given)."""
        given = {"backend": self.backend, "model": self.model, "base_url": self.base_url}
        return {k: v for k, v in given.items() if v is not None}


@dataclass
class Plan:
    """The recipe's chosen steps with their resolved options, over the user's dataset."""

    recipe: Recipe
    target: Target
    out_dir: Path
    steps: list[Step]
    _datasets: dict[str, Dataset] = field(default_factory=dict)

    def options(self, step: Step) -> dict[str, Any]:
        """The step's recognizer options: recipe defaults < step < --backend/--model < --option."""
        recognizers = step_recognizers(step)
        accepted: set[str] = set()
        for name in recognizers:
            accepted |= accepted_options(name)
        chosen = {k: v for k, v in self.recipe.defaults.items() if k in accepted}
        chosen.update(step.options)
        if VLM_RECOGNIZERS & set(recognizers):
            chosen.update({k: v for k, v in self.target.vlm_options().items() if k in accepted})
        if TEXT_LLM_RECOGNIZERS & set(recognizers):
            for key, value in self.target.vlm_options().items():
                if f"llm_{key}" in accepted and f"llm_{key}" not in step.options:
                    chosen[f"llm_{key}"] = value
        chosen.update({k: v for k, v in self.target.options.items() if k in accepted})
        return chosen

    def needs_vlm(self, step: Step) -> bool:
        """Whether the step calls the VLM named by --backend/--model/--base-url."""
        return bool(VLM_RECOGNIZERS & set(step_recognizers(step))) or step.kind == "finetune"

    def folder(self, step: Step) -> Path:
        """The step's run folder."""
        return self.out_dir / step.name

    def dataset(self, split: str | None = None) -> Dataset:
        """The recipe's dataset on the user's root, one split (default the recipe's), opened once."""
        spec = self.recipe.dataset
        split = split or str(spec.get("split", "test"))
        if split not in self._datasets:
            options = dict(spec.get("options") or {})
            if str(spec["name"]) in ("dfew", "mafw"):
                options["fold"] = int(spec.get("fold", 1))
            try:
                self._datasets[split] = open_dataset(
                    str(spec["name"]), self.target.root, split=split, **options
                )
            except EmovlmError as exc:
                raise RecipeError(
                    f"{self.recipe.where('dataset')}: cannot open {spec['name']} {split} under "
                    f"{self.target.root}: {exc}"
                ) from None
        return self._datasets[split]

    def fingerprint(self, step: Step) -> str:
        """A hash of what decides the step's results (not how answers are fetched)."""
        options = {k: v for k, v in self.options(step).items() if k not in TRANSPORT_OPTIONS}
        document: dict[str, Any] = {
            "kind": step.kind,
            "spec": {k: v for k, v in step.spec.items() if k not in ("options", "title")},
            "options": options,
            "dataset": dict(self.recipe.dataset),
            "root": str(self.target.root.resolve()),
            "bootstrap": self.recipe.bootstrap,
            "seed": self.recipe.seed,
        }
        if step.kind == "diagnose":  # a diagnosis is stale when the answers it read change
            document["of"] = self.fingerprint(self.recipe.step(str(step.spec["of"])))
        text = json.dumps(document, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @cached_property
    def splits(self) -> list[str]:
        """Every dataset split the chosen steps read."""
        wanted = [str(self.recipe.dataset.get("split", "test"))]
        for step in self.steps:
            if step.kind == "eval" and hasattr(RECOGNIZERS.get(str(step.recognizer)), "fit"):
                wanted.append(str(step.spec.get("fit_split", "train")))
            if step.kind == "finetune":
                wanted.append(str(step.spec.get("train_split", "train")))
        return list(dict.fromkeys(wanted))


def choose_steps(recipe: Recipe, only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[Step]:
    """The steps to run: --only (which also turns on steps off by default), minus --skip."""
    names = recipe.step_names()
    for flag, chosen in (("--only", only), ("--skip", skip)):
        unknown = [n for n in chosen if n not in names]
        if unknown:
            raise RecipeError(
                f"{flag} {', '.join(unknown)}: no such step in {recipe.path}; its steps are: "
                f"{', '.join(names)}"
            )
    if only:
        return [s for s in recipe.steps if s.name in only and s.name not in skip]
    return [s for s in recipe.steps if s.enabled and s.name not in skip]


def make_plan(
    recipe: Recipe, target: Target, out_dir: Path, steps: list[Step], *, reach_model: bool = True
) -> Plan:
    """Resolve and check everything the chosen steps need, before any of them runs.

    With `reach_model` the model must be given and a served one is asked one test question;
    without it (a dry run) nothing is called and no model is needed.
    """
    plan = Plan(recipe, target, Path(out_dir), steps)
    _check_overrides(plan)
    if not target.root.exists():
        raise RecipeError(
            f"{recipe.where('dataset')}: dataset root {target.root} does not exist; pass --root "
            f"with the folder holding {recipe.dataset['name']}"
        )
    for split in plan.splits:
        plan.dataset(split)
    for step in steps:
        _check_step(plan, step, needs_model=reach_model)
    if reach_model:
        _check_model(plan)
    return plan


def _check_overrides(plan: Plan) -> None:
    """Every --option applies to some chosen step's recognizer."""
    accepted: set[str] = set()
    for step in plan.steps:
        for name in step_recognizers(step):
            accepted |= accepted_options(name)
    unused = [k for k in plan.target.options if k not in accepted]
    if unused:
        raise RecipeError(
            f"--option {', '.join(unused)}: no chosen step of {plan.recipe.path} takes it; "
            "check the name (recognizer options as in `emovlm eval --help`, with underscores)"
        )


def _check_step(plan: Plan, step: Step, *, needs_model: bool) -> None:
    """Step settings that can be checked without running: the VLM is named, finetune is local,
    sweeps and calibration get a single-label dataset."""
    where = plan.recipe.where("steps", step.name)
    if step.kind in ("sweep", "calibrate") and plan.dataset().label_space.multi_label:
        raise RecipeError(
            f"{where}: step {step.name!r} ({step.kind}) compares single-label answers, but "
            f"{plan.recipe.dataset['name']} is multi-label; remove the step or --skip {step.name}"
        )
    if needs_model and plan.needs_vlm(step) and not plan.options(step).get("model"):
        raise RecipeError(
            f"{where}: step {step.name!r} runs a VLM but no model is given; pass --backend "
            f"openai --base-url URL --model NAME (or --backend transformers --model FOLDER), "
            f"or --skip {step.name}"
        )
    if step.kind == "finetune" and plan.options(step).get("backend", plan.target.backend) != (
        "transformers"
    ):
        raise RecipeError(
            f"{where}: step {step.name!r} trains a LoRA adapter, which needs a local model: pass "
            f"--backend transformers --model FOLDER, or leave the step out (--skip {step.name})"
        )
    if "narracap-llm" in step_recognizers(step) and not plan.options(step).get("clip_model"):
        raise RecipeError(
            f"{where}: step {step.name!r} needs CLIP weights, which emovlm cannot download: pass "
            f"--option clip_model=FOLDER (a transformers CLIP folder), or --skip {step.name}"
        )
    if step.kind == "calibrate" and step.spec.get("method", "batch") != "batch":
        raise RecipeError(
            f"{plan.recipe.where('steps', step.name, 'method')}: a recipe's calibrate step uses "
            "method: batch (the prior from the run's own scores); `emovlm calibrate` also has "
            "contextual"
        )


def _check_model(plan: Plan) -> None:
    """The VLM of the chosen steps can be reached (server answers, serves the model, sees images)."""
    using = [s for s in plan.steps if plan.needs_vlm(s)]
    if not using:
        return
    step = using[0]
    options = plan.options(step)
    backend = options.get("backend", "transformers")
    model = options.get("model")
    where = plan.recipe.where("steps", step.name)
    if backend == "transformers":
        if not model or not Path(str(model)).expanduser().is_dir():
            raise RecipeError(
                f"{where}: step {step.name!r} needs a local VLM folder, but --model {model!r} is "
                "not a folder; give the folder of a downloaded model, or --backend openai with "
                "--base-url and --model"
            )
        return
    keep = {"backend", "model", "base_url", "api_key_env", "timeout", "max_retries"}
    try:
        recognizer = RECOGNIZERS.get("vlm")(
            plan.dataset().label_space,
            **{k: v for k, v in options.items() if k in keep},
            cache=False,
        )
        recognizer.backend.preflight("generate")
    except EmovlmError as exc:
        raise RecipeError(f"{where}: step {step.name!r}: {exc}") from None
