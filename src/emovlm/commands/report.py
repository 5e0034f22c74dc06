"""`emovlm report`: rebuild a run folder's metrics and report from its stored rows."""

from __future__ import annotations

import typer
from rich.console import Console

from emovlm.commands._run_options import Bootstrap, BootstrapSeed, ConfigKey, RunFolder

_HEADLINE = ("uar", "war", "macro_f1", "map")


def report_command(
    run_dir: RunFolder,
    key: ConfigKey = None,
    bootstrap: Bootstrap = 1000,
    seed: BootstrapSeed = 0,
) -> None:
    """Rebuild metrics.json, report.md and report.html from a run folder's store.sqlite.

    Nothing is predicted again. Use it after changing --bootstrap or --seed, after a crash, or
    to report one configuration of a folder that holds several (see config.yaml for the keys).

    Example:
      emovlm report runs/dfew-test-f1-specialist --bootstrap 2000
    """
    from emovlm.run.runner import rebuild_report

    summary = rebuild_report(run_dir, config_key=key, n_bootstrap=bootstrap, seed=seed)
    console = Console()
    console.print(
        f"[bold]{summary.n_total}[/] stored samples of configuration {summary.config_key} "
        f"({summary.n_failed} failed) in {summary.run_dir}"
    )
    metrics = summary.metrics
    intervals = metrics.get("ci", {})
    for name in _HEADLINE:
        value = metrics.get(name)
        if not isinstance(value, int | float):
            continue
        line = f"  {name:9s} {value:.4f}"
        if name in intervals:
            low, high = intervals[name]
            level = round(100 * metrics.get("ci_level", 0.95))
            line += f"  [dim]({level}% CI {low:.4f}–{high:.4f})[/]"
        console.print(line)
    for kind, path in summary.report_files.items():
        console.print(f"  {kind}: {path}")


def register(app: typer.Typer) -> None:
    """Add the `report` command."""
    app.command("report")(report_command)
