"""`emovlm backends`: list the VLM backends and what each needs installed."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from emovlm.backends.vlm import describe_backends


def backends(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """List the VLM backends (--backend NAME), whether they can run here, and how to install them.

    Examples:
      emovlm backends
      emovlm backends --json
    """
    rows = describe_backends()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="VLM backends")
    for column in ("backend", "what it runs", "needs", "installed", "to install"):
        table.add_column(column)
    for row in rows:
        missing = row["missing"]
        state = "yes" if not missing else "no (missing " + ", ".join(missing) + ")"
        if row["installed"] and row["missing_optional"]:
            state += "; optional missing: " + ", ".join(row["missing_optional"])
        needs = ", ".join(row["requires"] + [f"{m} (optional)" for m in row["optional"]])
        table.add_row(row["name"], row["help"], needs, state, "" if not missing else row["install"])
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the `backends` command."""
    app.command()(backends)
