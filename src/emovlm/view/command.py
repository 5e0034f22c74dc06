"""`emovlm view`: explore run folders in a local web app, or write them as one HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from emovlm.view import DEFAULT_HOST, MAX_STATIC_SAMPLES

DEFAULT_PORT = 8765


def view_command(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="run folders written by `emovlm eval --run-dir`")
    ],
    static: Annotated[
        Path | None,
        typer.Option(help="write one self-contained HTML file (or OUT/explorer.html) and exit"),
    ] = None,
    max_samples: Annotated[
        int, typer.Option(help="with --static: samples of each run embedded in the page")
    ] = MAX_STATIC_SAMPLES,
    host: Annotated[
        str,
        typer.Option(help="address to listen on; 0.0.0.0 exposes the explorer to your network"),
    ] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option(help="port to listen on (0 picks a free one)")
    ] = DEFAULT_PORT,
) -> None:
    """Explore runs: metrics, confusion matrix → samples, thumbnails, answers; compare runs.

    Several folders (or a folder holding several configurations) can be compared sample by
    sample. The server listens on 127.0.0.1 only unless --host says otherwise; it has no
    login, so expose it only on networks you trust (or through an SSH tunnel).

    Examples:
      emovlm view runs/dfew-test-f1-vlm
      emovlm view runs/dfew-test-f1-vlm runs/dfew-test-f1-msce
      emovlm view runs/dfew-test-f1-vlm --static share/explorer.html
    """
    from emovlm.view.export import write_static_page
    from emovlm.view.runs import open_runs
    from emovlm.view.server import make_server

    runs = open_runs(run_dirs)
    console = Console()
    if static is not None:
        path = write_static_page(runs, static, max_samples=max_samples)
        console.print(f"wrote {path} ({len(runs)} run(s), up to {max_samples} samples each)")
        return
    server = make_server(runs, host, port)
    bound_host, bound_port = server.server_address[:2]
    console.print(
        f"emovlm explorer on http://{bound_host}:{bound_port}/ ({len(runs)} run(s)); Ctrl-C stops it"
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    """Add the `view` command."""
    app.command("view")(view_command)
