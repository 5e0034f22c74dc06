"""A small typed registry that maps names to lazily imported implementations."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import InitVar, dataclass, field
from typing import Generic, TypeVar

from emovlm.errors import InputError, MissingDependencyError

T = TypeVar("T")


@dataclass
class Registry(Generic[T]):
    """Names → 'module:attribute' targets, imported only when a name is used.

    Declared as a table: `Registry(kind, package, entries)`, each entry (name, target relative to
    `package`, pip extra or "", help), in the order names are listed.
    """

    kind: str
    package: str = ""
    entries: InitVar[Iterable[tuple[str, str, str, str]]] = ()
    _targets: dict[str, str] = field(default_factory=dict)
    _needs: dict[str, str] = field(default_factory=dict)
    _help: dict[str, str] = field(default_factory=dict)

    def __post_init__(self, entries: Iterable[tuple[str, str, str, str]]) -> None:
        for name, target, needs, help in entries:
            self.add(name, f"{self.package}.{target}" if self.package else target, needs, help)

    def add(self, name: str, target: str, needs: str = "", help: str = "") -> None:
        """Register `target` ('package.module:attr') under `name`; `needs` is the pip extra to name."""
        self._targets[name] = target
        self._needs[name] = needs
        self._help[name] = help

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._targets)

    def describe(self, name: str) -> tuple[str, str]:
        """(one-line help, what it needs installed) for a registered name."""
        return self._help[name], self._needs[name]

    def get(self, name: str) -> Callable[..., T]:
        """Import and return what `name` stands for, with a clear error for unknown names."""
        if name not in self._targets:
            raise InputError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self._targets)}"
            )
        module_name, attr = self._targets[name].split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            extra = self._needs[name]
            hint = f"pip install 'emovlm[{extra}]'" if extra else "pip install emovlm"
            raise MissingDependencyError(
                f"{self.kind} {name!r} needs a package that is not installed ({exc.name}); "
                f"run: {hint}"
            ) from exc
        return getattr(module, attr)
