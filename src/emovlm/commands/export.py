"""`emovlm export`: a dataset split as instruction JSONL (LLaVA-style, ShareGPT-style) for external trainers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from emovlm.commands._dataset_options import DATA_PANEL, open_split, with_dataset_options
from emovlm.commands._recognizer_options import with_options
from emovlm.commands._run_options import Progress
from emovlm.commands._settings_options import field_options
from emovlm.train.settings import VLMSettings

_VIEW = "What the model is shown (as `eval --recognizer vlm`)"
VIEW_FIELDS = ("frames", "faces", "face_step", "prompt", "image_size", "person", "max_labels")
"""The settings of the fine-tuned VLM that decide what an exported record shows and asks."""


@with_dataset_options
@with_options(field_options([VLMSettings], _VIEW, VIEW_FIELDS), "view")
def export_command(
    out: Annotated[Path, typer.Option(help="folder to write the JSONL files and media into")],
    split: Annotated[
        str, typer.Option(help="split to export", rich_help_panel=DATA_PANEL)
    ] = "train",
    formats: Annotated[
        str, typer.Option("--format", help="llava, sharegpt or both (comma-separated)")
    ] = "llava,sharegpt",
    progress: Progress = True,
    *,
    dataset_flags: dict[str, Any],
    view: dict[str, Any],
) -> None:
    """Write a split's questions and gold answers as JSONL that LLaVA and LLaMA-Factory train on.

    Each sample becomes the prompt `emovlm eval --recognizer vlm` would ask (same frames, face
    crops or red person box, template) and its gold answer. llava.jsonl holds {id, image|video,
    conversations}; sharegpt.jsonl holds {messages, images|videos} and is registered for
    LLaMA-Factory in dataset_info.json. Media are cited by absolute path; images with a drawn box
    and face-crop videos are written under OUT/media.

    Example:
      emovlm export --dataset emotic --root /data/EMOTIC --split train --out exports/emotic
    """
    from emovlm.train.export import export_instructions
    from emovlm.train.instructions import ViewBuilder
    from emovlm.train.trainset import labelled_samples

    data = open_split(dataset_flags, split)
    builder = ViewBuilder(data.label_space, **view)
    result = export_instructions(
        labelled_samples(data),
        builder,
        out,
        formats=[f.strip() for f in formats.split(",") if f.strip()],
        progress=progress,
    )
    console = Console()
    console.print(f"[bold]{result.n_records}[/] records, {len(result.failed)} unreadable sample(s)")
    for kind, path in result.files.items():
        console.print(f"  {kind}: {path}")


def register(app: typer.Typer) -> None:
    """Add the `export` command."""
    app.command("export")(export_command)
