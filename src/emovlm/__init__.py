"""emovlm: recognise human emotions in face videos and images with VLMs, and measure where they fail."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__version__ = "0.1.0"

# torch's OpenMP threads wait for work by sleeping, not spinning: a spinning thread holds a
# core that video decoding (emovlm reads ahead on another thread) or other processes need.
# Read when torch loads, so it applies where emovlm is imported first (the CLI always is); an
# OMP_WAIT_POLICY already set is kept. Measured in benchmarks/RESULTS.md (issue 13).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def predict(
    media: str | PathLike[str] | Sequence[str | PathLike[str]],
    *,
    label_set: str = "fer2013",
    all_faces: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """Per-frame emotions of images and videos as one table, with the offline specialist.

    One row per analysed frame and face: `sample_id` (the file), `frame`, `time`, `track`,
    `main`, `face`, the box `x1`…`y2`, one `p_<label>` column per label and the clip's `label`
    (see `emovlm.eval.tables`). `options` are the specialist's settings (`frames`, `face_step`,
    `model`, `faces`, `aggregate`, `device`, …). Files that cannot be read (or show no face)
    have no rows: a warning names each with its reason, also kept in `table.attrs["failed"]`.
    """
    from emovlm.eval.tables import frame_table
    from emovlm.labels import get_label_space
    from emovlm.recognizers.specialist import SpecialistRecognizer
    from emovlm.types import Sample

    paths = [media] if isinstance(media, str | PathLike) else list(media)
    recognizer = SpecialistRecognizer(get_label_space(label_set), all_faces=all_faces, **options)
    predictions = recognizer.predict([Sample(id=str(p), media=Path(p)) for p in paths])
    table = frame_table(predictions)
    table.attrs["failed"] = {p.sample_id: p.reason for p in predictions if p.reason}
    for reason in table.attrs["failed"].values():
        warnings.warn(f"no rows for {reason}", stacklevel=2)
    return table
