"""Prompt templates (Jinja2 files) and their loader: built-in names or a user's own file.

Variables every template receives: `labels` (label names in order), `media` ("video" or
"image"), `num_frames`, `multi_label`, `dataset` (label space name), `person` ("box", "crop" or
None when the sample has no person box) and `k` (most labels to ask for).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2

from emovlm.errors import InputError

PROMPTS_DIR = Path(__file__).parent
_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False
)


def prompt_names() -> list[str]:
    """Names of the built-in prompt templates."""
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.j2"))


@dataclass(frozen=True)
class PromptTemplate:
    """A named Jinja2 template that renders the text of a VLM question."""

    name: str
    source: str

    @cached_property
    def _template(self) -> jinja2.Template:
        try:
            return _ENV.from_string(self.source)
        except jinja2.TemplateSyntaxError as exc:
            raise InputError(
                f"prompt {self.name!r} line {exc.lineno}: {exc.message}; fix the template"
            ) from None

    def check(self) -> None:
        """Raise InputError naming the line when the template does not parse."""
        self._template  # noqa: B018 - compiling is the check

    def render(self, **variables: Any) -> str:
        """The prompt text for these variables, stripped of surrounding blank space."""
        try:
            return self._template.render(**variables).strip()
        except jinja2.UndefinedError as exc:
            raise InputError(
                f"prompt {self.name!r} uses an unknown variable ({exc.message}); templates get: "
                "labels, media, num_frames, multi_label, dataset, person, k"
            ) from None


def load_prompt(name_or_path: str) -> PromptTemplate:
    """A built-in template by name (e.g. "dfer"), or a user's template file (any path)."""
    path = Path(name_or_path).expanduser()
    builtin = PROMPTS_DIR / f"{name_or_path}.j2"
    if path.is_file():
        prompt = PromptTemplate(str(path), path.read_text(encoding="utf-8"))
    elif builtin.is_file():
        prompt = PromptTemplate(name_or_path, builtin.read_text(encoding="utf-8"))
    else:
        raise InputError(
            f"prompt {name_or_path!r} is neither a built-in name ({', '.join(prompt_names())}) nor "
            "a template file; check the name or the path"
        )
    prompt.check()
    return prompt
