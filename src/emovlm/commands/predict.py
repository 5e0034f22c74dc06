"""`emovlm predict`: recognise the emotion in images and videos given on the command line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from emovlm.commands._recognizer_options import build_recognizer, with_recognizer_options
from emovlm.errors import InputError
from emovlm.eval.tables import describe_gaps, frame_table, write_table
from emovlm.labels import get_label_space
from emovlm.types import Prediction, Sample


def predict_media(
    paths: Sequence[Path], label_set: str, recognizer: str, options: dict[str, Any]
) -> list[Prediction]:
    """Run a recognizer over media files, one Prediction per file (failures included)."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise InputError(f"{missing[0]} does not exist; check the path")
    model = build_recognizer(recognizer, get_label_space(label_set), options)
    samples = [Sample(id=str(p), media=p) for p in paths]
    return model.predict(samples)


def prediction_record(prediction: Prediction) -> dict[str, Any]:
    """A JSON-able summary of one prediction (no per-frame trajectory; its gaps listed)."""
    top = prediction.top
    return {
        "media": prediction.sample_id,
        "label": top,
        "probability": (prediction.scores or {}).get(top) if top else None,
        "ranked": list(prediction.labels),
        "scores": dict(prediction.scores or {}),
        "status": str(prediction.status),
        "reason": prediction.reason,
        "frames_with_face": prediction.extra.get("frames_with_face"),
        "gaps": list(prediction.extra.get("gaps", [])),
        "raw": prediction.raw,
    }


def print_predictions(predictions: Sequence[Prediction], console: Console) -> None:
    """A table (file, top label with probability, runner-up, faces found, status), then each
    sample's failure reason and the stretches of its video without results."""
    table = Table(title="emovlm predictions", show_lines=False)
    table.add_column("media", overflow="fold", min_width=18)
    for column in ("label", "p", "runner-up", "frames w/ face", "status"):
        table.add_column(column)
    for pred in predictions:
        rec = prediction_record(pred)
        prob = f"{rec['probability']:.2f}" if rec["probability"] is not None else ""
        second = pred.labels[1] if len(pred.labels) > 1 else ""
        faces = "" if rec["frames_with_face"] is None else str(rec["frames_with_face"])
        table.add_row(
            Path(pred.sample_id).name, rec["label"] or "—", prob, second, faces, rec["status"]
        )
    console.print(table)
    for pred in predictions:
        name = Path(pred.sample_id).name
        if pred.reason:
            said = pred.reason if name in pred.reason else f"{name}: {pred.reason}"
            console.print(f"[red]{said}[/]", soft_wrap=True, highlight=False)
        if gaps := describe_gaps(pred):
            console.print(f"[yellow]{name}[/] gaps: {gaps}", soft_wrap=True, highlight=False)


@with_recognizer_options
def predict(
    media: Annotated[
        list[Path], typer.Argument(help="image or video files (mp4, avi, mov, jpg, png, …)")
    ],
    label_set: Annotated[
        str,
        typer.Option(help="labels to answer in: fer2013 | dfew | ferv39k | mafw | emotic | rafdb"),
    ] = "fer2013",
    recognizer: Annotated[
        str, typer.Option(help="specialist (offline default) | vlm")
    ] = "specialist",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    frames_out: Annotated[
        Path | None,
        typer.Option(
            help="write per-frame results (time, frame, face box, track id, p_<label>, clip "
            "label; one row per analysed frame and face) to FILE.parquet or FILE.csv [specialist]"
        ),
    ] = None,
    *,
    recognizer_options: dict[str, Any],
) -> None:
    """Recognise the emotion in each image or video and print a table (or JSON).

    Examples:
      emovlm predict face.jpg clip.mp4
      emovlm predict clip.mp4 --label-set mafw --frames fps:5 --aggregate peak --json
      emovlm predict interview.mp4 --frames-out interview.parquet --all-faces
    """
    if frames_out is not None and frames_out.suffix.lower() not in (".parquet", ".csv"):
        raise InputError(f"--frames-out {frames_out}: name a .parquet or .csv file")
    predictions = predict_media(media, label_set, recognizer, recognizer_options)
    if frames_out is not None:
        write_table(frame_table(predictions), frames_out)
    if as_json:
        typer.echo(json.dumps([prediction_record(p) for p in predictions], indent=2))
    else:
        print_predictions(predictions, Console())


def register(app: typer.Typer) -> None:
    """Add the `predict` command."""
    app.command()(predict)
