"""Options made from chosen fields of settings classes, for commands other than the recognizers'."""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from dataclasses import fields

from emovlm.commands._recognizer_options import flag_type


def field_options(
    classes: Sequence[type],
    panel: str,
    names: Sequence[str] = (),
    rename: Callable[[str], str] = str,
) -> dict[str, tuple[type, str, str]]:
    """The fields of `classes` (or those in `names`, in that order) as options for `with_options`.

    Each option is (CLI type, the field's help with its default unless it names it, `panel`), under
    `rename(field)`.
    """
    by_name, hints = {}, {}
    for cls in classes:
        hints.update(typing.get_type_hints(cls))
        by_name.update({f.name: f for f in fields(cls)})
    table = {}
    for name in names or by_name:
        f = by_name[name]
        text = f.metadata["help"]
        if f.default is not None and str(f.default) not in text:
            text += f" (default: {f.default})"
        table[rename(name)] = (flag_type(hints[name]), text, panel)
    return table
