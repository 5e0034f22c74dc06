"""The package's layers import only downwards: checked from the imports of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import emovlm

PACKAGE = Path(emovlm.__file__).parent

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"types", "errors"}),
    frozenset(
        {
            "labels",
            "answers",
            "assets",
            "video",
            "frames",
            "prompts",
            "vocab",
            "registry",
            "demo",
            "protocols",
        }
    ),
    frozenset({"thumbnails"}),
    frozenset({"eval", "data", "faces", "backends"}),
    frozenset({"recognizers"}),
    frozenset({"run"}),
    frozenset({"train"}),
    frozenset({"reproduce"}),
    frozenset({"commands"}),
    frozenset({"cli", "view", "__init__", "__main__"}),
)
"""From the bottom up; a module imports only from its own part and from layers below it.

Parts within one layer are siblings that do not import each other (`eval`, `data`, `faces` and
`backends` stay independent), except in SHARING_LAYERS.
"""

SHARING_LAYERS = {0, 1, len(LAYERS) - 1}
"""Layers whose parts may import each other: the small single-module parts, and the entry points."""


def _part(module: str) -> str:
    """The top-level part of emovlm a dotted module name belongs to."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _layer(part: str) -> int:
    """The index of the layer holding `part`; a part in no layer fails the test."""
    for index, parts in enumerate(LAYERS):
        if part in parts:
            return index
    raise AssertionError(f"emovlm.{part} is in no layer: add it to LAYERS in {__file__}")


def _is_module(name: str) -> bool:
    """Whether emovlm.`name` is a module or package (not a name defined in emovlm/__init__)."""
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name / "__init__.py").is_file()


def _module_name(path: Path) -> str:
    """The dotted name of the module at `path`."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """Every emovlm module that the file imports, at any depth (functions and TYPE_CHECKING too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("emovlm."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("emovlm."):
                found.add(target)
            elif target == "emovlm":
                found.update(
                    f"emovlm.{a.name}" if _is_module(a.name) else target for a in node.names
                )
    return found


def upward_imports() -> list[str]:
    """Each import that points up a layer or across to a sibling, as 'module -> imported'."""
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        part = _part(module)
        layer = _layer(part)
        for target in sorted(_imports(path, module)):
            other = _part(target)
            if other == part:
                continue
            other_layer = _layer(other)
            if other_layer > layer or (other_layer == layer and layer not in SHARING_LAYERS):
                wrong.append(f"{module} -> {target}")
    return wrong


def test_every_import_points_down_a_layer() -> None:
    assert upward_imports() == []


def test_the_check_finds_an_upward_import(tmp_path: Path) -> None:
    path = PACKAGE / "frames.py"
    tree_imports = _imports(path, "emovlm.frames")
    assert all(_layer(_part(t)) <= _layer("frames") for t in tree_imports)
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from emovlm.run.store import RunStore\n")
    assert "emovlm.run.store" in _imports(fake, "emovlm.labels")
