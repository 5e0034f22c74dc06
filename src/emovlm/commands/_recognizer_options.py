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


def flag_type(hint: Any) -> type:
    """The CLI type of a settings field: its own, without None; choices and lists as text."""
    if typing.get_origin(hint) not in (typing.Literal, tuple):
        hint = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    return str if typing.get_origin(hint) in (typing.Literal, tuple) else hint


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
                options[f.name] = (flag_type(hints[f.name]), text, panel)
    return options


def with_options(
    table: Mapping[str, tuple[type, str, str]], into: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add an option per `table` entry (name → CLI type, help, panel) to a command.

    The options default to None, so only given flags count; the command receives the given ones
    as the dict keyword `into`. Entries the command declares itself are left to it.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command)
        hints = typing.get_type_hints(command, include_extras=True)
        base = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in signature.parameters.values()
            if p.name != into
        ]
        own = {p.name for p in base}
        added = {k: v for k, v in table.items() if k not in own}
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
            return command(**kwargs, **{into: chosen})

        parameters = base + extra
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate


with_recognizer_options = with_options(recognizer_options(), "recognizer_options")
"""Every recognizer setting as an option; the command receives the given ones as
`recognizer_options` (settings it declares itself, e.g. `predict --all-faces`, are left to it)."""


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
