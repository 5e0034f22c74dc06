"""`emovlm tokens`: visual tokens per clip for VLM families, at each frame rate and for MSCE."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from emovlm.errors import InputError


def tokens_command(
    family: Annotated[
        list[str] | None,
        typer.Option(help="VLM family, repeatable or comma-separated, or 'all' (default all)"),
    ] = None,
    width: Annotated[int, typer.Option(help="frame width in pixels")] = 640,
    height: Annotated[int, typer.Option(help="frame height in pixels")] = 360,
    duration: Annotated[float, typer.Option(help="clip length in seconds")] = 3.0,
    source_fps: Annotated[float, typer.Option(help="the video's own frame rate")] = 25.0,
    fps: Annotated[
        list[str] | None,
        typer.Option(
            help="sampling rates, repeatable or comma-separated (default 1,5,10,15,20,25)"
        ),
    ] = None,
    keyframes: Annotated[int, typer.Option(help="MSCE keyframes (0: no MSCE rows)")] = 8,
    per_gap: Annotated[int, typer.Option(help="MSCE in-between frames per gap")] = 4,
    image_size: Annotated[
        int,
        typer.Option(
            help="longest side emovlm sends (the VLM recognizers' --image-size); 0: as is"
        ),
    ] = 448,
    as_json: Annotated[
        bool, typer.Option("--json", help="print JSON rows instead of a table")
    ] = False,
) -> None:
    """Visual tokens one clip costs each VLM family: dense sampling at each fps, and MSCE.

    Counts follow each family's own processor rules and a reference checkpoint's processor
    settings (no weights needed); `emovlm tokens --family all` lists the families.

    Examples:
      emovlm tokens --family qwen2-vl --width 640 --height 360 --duration 3 --fps 1,5,10
      emovlm tokens --family all --keyframes 8 --per-gap 4 --json
    """
    from emovlm.backends.visual_tokens import FAMILIES, fitted, token_table

    names = [n.strip() for value in family or ["all"] for n in value.split(",") if n.strip()]
    if "all" in names:
        names = list(FAMILIES)
    try:
        rates = [float(r) for value in fps or ["1,5,10,15,20,25"] for r in value.split(",") if r]
    except ValueError:
        raise InputError(f"--fps takes frame rates such as 1,5,10; got {fps}") from None
    if min(width, height, duration, source_fps, *rates) <= 0 or keyframes < 0 or per_gap < 0:
        raise InputError("sizes, duration and rates must be positive; keyframes and per-gap ≥ 0")
    rows = token_table(
        names,
        height=height,
        width=width,
        duration=duration,
        source_fps=source_fps,
        rates=rates,
        keyframes=keyframes or None,
        per_gap=per_gap,
        image_size=image_size or None,
    )
    if as_json:
        typer.echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    sent_height, sent_width = fitted(height, width, image_size or None)
    table = Table(
        title=f"visual tokens per clip · {duration:g} s at {source_fps:g} fps, "
        f"{width}×{height} sent as {sent_width}×{sent_height}",
        caption="msce:KxG/specialist: stage 2 only (the specialist describer costs no VLM call); "
        "/vlm: plus one describer call per gap; uniform:N: dense sampling of MSCE's frames",
    )
    table.add_column("")
    for row in rows:
        table.add_column(row.setting, justify="right")
    table.add_row("frames", *(str(row.frames) for row in rows), end_section=False)
    table.add_row("VLM calls", *(str(row.calls) for row in rows), end_section=True)
    for name in names:
        table.add_row(name, *(f"{row.tokens[name]:,}" for row in rows))
    console = Console()
    console.print(table)
    for name in names:
        console.print(f"  [bold]{name}[/] ({FAMILIES[name].reference}): {FAMILIES[name].rule}")


def register(app: typer.Typer) -> None:
    """Add the `tokens` command."""
    app.command("tokens")(tokens_command)
