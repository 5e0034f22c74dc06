"""Recognizer options of `predict`, `eval`, `sweep` and `calibrate`, made from the settings classes."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Annotated, Any

import typer
from rich.markup import escape

from emovlm.errors import InputError
from emovlm.labels import LabelSpace
from emovlm.recognizers.base import RECOGNIZERS, Recognizer
from emovlm.recognizers.settings import GROUPS, RECOGNIZER_SETTINGS, owner, refuse_idle_flags

PANEL = "Recognizer options · {}"


def _flag_type(hint: Any) -> type:
    """The CLI type of a settings field: its own, without None; closed choices as text."""
    if typing.get_origin(hint) is not typing.Literal:
        hint = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    return str if typing.get_origin(hint) is typing.Literal else hint


@functools.cache
def recognizer_options() -> dict[str, tuple[type, str, str]]:
    """Every setting of every recognizer → (CLI type, help, help panel), from the settings classes.

    A setting's help is its field's, followed by the recognizers that take it; its panel is the
    first line of the class that writes it. The CLI flag is --name with dashes.
    """
    users: dict[str, list[str]] = {}
    for name, cls in RECOGNIZER_SETTINGS.items():
        for f in fields(cls):
            users.setdefault(f.name, []).append(name)
    options = {}
    for cls in GROUPS:
        hints = typing.get_type_hints(cls)
        panel = PANEL.format((cls.__doc__ or cls.__name__).split(":")[0])
        for f in fields(cls):
            if f.name in users and f.name not in options and owner(f.name) is cls:
                text = f"{f.metadata['help']} [{', '.join(users[f.name])}]"
                options[f.name] = (_flag_type(hints[f.name]), text, panel)
    return options


def with_recognizer_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add every recognizer setting as an option (default None: only given flags count) to a
    command; it receives the given ones as `recognizer_options`. Settings the command declares
    itself (e.g. `predict --all-faces`) are left to it."""
    signature = inspect.signature(command)
    hints = typing.get_type_hints(command, include_extras=True)
    base = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != "recognizer_options"
    ]
    own = {p.name for p in base}
    added = {k: v for k, v in recognizer_options().items() if k not in own}
    extra = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                kind | None, typer.Option(help=escape(text), rich_help_panel=panel)
            ],
        )
        for name, (kind, text, panel) in added.items()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        chosen = {k: kwargs.pop(k) for k in added if kwargs.get(k) is not None}
        for k in added:
            kwargs.pop(k, None)
        return command(**kwargs, recognizer_options=chosen)

    parameters = base + extra
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


def build_recognizer(name: str, label_space: LabelSpace, options: Mapping[str, Any]) -> Recognizer:
    """Create a recognizer from its settings class and the given options.

    Options the recognizer's settings lack, and backend options that its chosen backends would
    not read, are refused by flag name.
    """
    factory = RECOGNIZERS.get(name)
    accepted = {f.name for f in fields(RECOGNIZER_SETTINGS[name])}
    wrong = [k for k in options if k not in accepted]
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise InputError(f"{flags} does not apply to --recognizer {name}; see `emovlm eval --help`")
    refuse_idle_flags(name, options)
    return factory(label_space, RECOGNIZER_SETTINGS[name](**options))
