"""The `emovlm` command line: a thin layer over the Python API (one module per command)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Annotated

import typer
from rich.console import Console
from typer.exceptions import TyperException

import emovlm.commands
from emovlm import __version__
from emovlm.errors import EmovlmError

app = typer.Typer(
    name="emovlm",
    help=(
        "Recognise emotions in face videos and images with vision-language models and "
        "vision-only specialists, and measure why and where they fail.\n\n"
        "Start with `emovlm demo` (offline, real faces), then `emovlm eval --help`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_err = Console(stderr=True)
_INTERRUPTED = 130


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"emovlm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Recognise emotions with VLMs and specialists, and measure where they fail."""


for _info in sorted(pkgutil.iter_modules(emovlm.commands.__path__), key=lambda m: m.name):
    if _info.name.startswith("_"):
        continue
    importlib.import_module(f"emovlm.commands.{_info.name}").register(app)
importlib.import_module("emovlm.view.command").register(app)  # the explorer sits above commands


def main() -> None:
    """Run the CLI; user errors print one line and exit with code 2."""
    try:
        result = app(standalone_mode=False)
    except EmovlmError as exc:
        _err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except TyperException as exc:  # usage errors of typer's bundled click
        exc.show()
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _err.print("interrupted; results written so far are kept — rerun with --resume to continue")
        sys.exit(_INTERRUPTED)
    if result == _INTERRUPTED:  # typer turns Ctrl-C into this exit code
        _err.print("interrupted; results written so far are kept — rerun with --resume to continue")
    sys.exit(result if isinstance(result, int) else 0)
