"""Per-frame results as tables: one row per analysed frame and face, and per-second summaries.

Columns of a frame table, in order: `sample_id`, `frame` (index in the source), `time` (s),
`track` (face id stable across frames; -1 where no face was found), `main` (the row of the
face the clip label comes from), `face` (a face was found), the box `x1`, `y1`, `x2`, `y2`
(displayed pixels), one `p_<label>` column per label of the label space, and `label` (the
clip's top label). A frame without a face keeps its row with NaN box and probabilities: gaps
stay visible. `sample_id` and `label` are categoricals. In a run folder the tables of one
configuration live in `frames/<config key>/part-NNNNNN.parquet`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emovlm.errors import InputError
from emovlm.types import Prediction

PROB_PREFIX = "p_"
"""Prefix of the probability columns: `p_happy`, `p_neutral`, …"""

BOX_COLUMNS = ("x1", "y1", "x2", "y2")

FLUSH_ROWS = 50_000
"""Rows a FrameTableWriter holds before it writes them out as one Parquet part."""

FRAMES_FOLDER = "frames"


@pd.api.extensions.register_dataframe_accessor("emo")
class EmotionAccessor:
    """`table.emo.probabilities` (columns named by label), `.boxes` and `.labels` of a frame table."""

    def __init__(self, table: pd.DataFrame) -> None:
        self._table = table

    @property
    def labels(self) -> list[str]:
        """The labels that have a probability column, in column order."""
        return [c[len(PROB_PREFIX) :] for c in self._table.columns if c.startswith(PROB_PREFIX)]

    @property
    def probabilities(self) -> pd.DataFrame:
        """The probability columns, named by their labels."""
        return self._table[[PROB_PREFIX + label for label in self.labels]].set_axis(
            self.labels, axis=1
        )

    @property
    def boxes(self) -> pd.DataFrame:
        """The face box columns x1, y1, x2, y2."""
        return self._table[list(BOX_COLUMNS)]


GAPS_SHOWN = 10
"""Gaps spelled out per sample by `describe_gaps`; the rest are counted."""


def describe_gaps(prediction: Prediction) -> str:
    """ "12.0-15.3 s no face; …" for the stretches without results, or "" when there are none."""
    gaps = (prediction.extra or {}).get("gaps") or []
    spans = "; ".join(
        f"{gap['start']:.1f}-{gap['end']:.1f} s {gap['reason']}" for gap in gaps[:GAPS_SHOWN]
    )
    more = prediction.extra.get("n_gaps", len(gaps)) - GAPS_SHOWN if gaps else 0
    return spans + (f" (+{more} more)" if more > 0 else "")


def frame_table(predictions: Iterable[Prediction]) -> pd.DataFrame:
    """One table of the per-frame results of `predictions` (those without any are skipped)."""
    parts = [_arrays(p) for p in predictions if p.frames is not None and len(p.frames)]
    if not parts:
        return pd.DataFrame(columns=["sample_id", "frame", "time", "track", "main", "face"])
    labels = parts[0][1]
    if any(part[1] != labels for part in parts):
        raise InputError("predictions answer in different label sets; table them one set at a time")
    columns = {key: np.concatenate([part[0][key] for part in parts]) for key in parts[0][0]}
    table = pd.DataFrame(columns)
    table["sample_id"] = table["sample_id"].astype("category")
    table["label"] = pd.Categorical(table["label"], categories=list(labels))
    return table


def _arrays(prediction: Prediction) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """The columns of one prediction's frames as arrays, and its labels."""
    frames = prediction.frames
    n = len(frames)
    columns: dict[str, np.ndarray] = {
        "sample_id": np.full(n, prediction.sample_id, dtype=object),
        "frame": frames.index,
        "time": frames.time,
        "track": frames.track,
        "main": frames.main,
        "face": frames.track >= 0,
    }
    columns.update(zip(BOX_COLUMNS, frames.box.T, strict=True))
    columns.update(
        (PROB_PREFIX + label, frames.probs[:, j]) for j, label in enumerate(frames.labels)
    )
    columns["label"] = np.full(n, prediction.top, dtype=object)
    return columns, frames.labels


def write_table(table: pd.DataFrame, path: Path) -> Path:
    """Write a frame table to `path`: Parquet for .parquet, CSV for .csv."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InputError(f"--frames-out {path}: name a .parquet or .csv file")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)
    return path


def frames_dir(run_dir: Path, config_key: str) -> Path:
    """Where a run folder keeps the frame tables of one configuration."""
    return Path(run_dir) / FRAMES_FOLDER / config_key


class FrameTableWriter:
    """Appends predictions' per-frame rows to Parquet parts in `folder`, FLUSH_ROWS at a time.

    Parts are numbered on from those already there, so a resumed run adds to them; a sample
    written twice (predicted again after an interruption) is read back from its latest part.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._pending: list[Prediction] = []
        self._rows = 0

    def __enter__(self) -> FrameTableWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush()

    def add(self, predictions: Sequence[Prediction]) -> None:
        """Queue the rows of predictions that have per-frame results; write when enough."""
        for prediction in predictions:
            if prediction.frames is not None and len(prediction.frames):
                self._pending.append(prediction)
                self._rows += len(prediction.frames)
        if self._rows >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the queued rows as the next part."""
        if not self._pending:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        number = len(list(self.folder.glob("part-*.parquet")))
        path = self.folder / f"part-{number:06d}.parquet"
        temporary = path.with_suffix(".tmp")
        pq.write_table(
            pa.Table.from_pandas(frame_table(self._pending), preserve_index=False), temporary
        )
        temporary.replace(path)
        self._pending, self._rows = [], 0


def read_frame_tables(folder: Path, sample_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The frame table kept in `folder` (only `sample_ids` when given); empty when there is none."""
    parts = sorted(Path(folder).glob("part-*.parquet"))
    tables = []
    for number, part in enumerate(parts):
        filters = [("sample_id", "in", list(sample_ids))] if sample_ids is not None else None
        table = pq.read_table(part, filters=filters).to_pandas()
        table["part"] = number
        tables.append(table)
    if not tables:
        return frame_table(())
    table = pd.concat(tables, ignore_index=True)
    table["sample_id"] = table["sample_id"].astype(str)
    latest = table.groupby("sample_id")["part"].transform("max")
    table = table[table["part"] == latest].drop(columns="part").reset_index(drop=True)
    table["sample_id"] = table["sample_id"].astype("category")
    return table


def sample_ids(folder: Path, limit: int | None = None) -> tuple[list[str], int]:
    """The first `limit` sample ids with frames in `folder` (in writing order) and their number."""
    seen: dict[str, None] = {}
    for part in sorted(Path(folder).glob("part-*.parquet")):
        column = pq.read_table(part, columns=["sample_id"]).column("sample_id").to_pandas()
        seen.update(dict.fromkeys(pd.unique(column.astype(str))))
    ids = list(seen)
    return (ids if limit is None else ids[:limit]), len(ids)


def per_second(table: pd.DataFrame, seconds: float = 1.0) -> pd.DataFrame:
    """Per sample and per `seconds`-long bin: frames analysed, frames with the main face, the
    mean probability of each label over the main face's rows, and the top label.

    Every bin from the first to the last analysed one has a row; a bin without a main-face row
    (no face, or no decoded frame) has NaN probabilities and an empty label: a gap.
    """
    if seconds <= 0:
        raise InputError(f"summary bins must be longer than 0 s, got {seconds}")
    probs = [c for c in table.columns if c.startswith(PROB_PREFIX)]
    if table.empty:
        return pd.DataFrame(columns=["sample_id", "start", "frames", "with_face", *probs, "label"])
    work = table.assign(bin=np.floor(table["time"].to_numpy() / seconds).astype(np.int64))
    work["sample_id"] = work["sample_id"].astype(str)
    frames = work.drop_duplicates(["sample_id", "frame"]).groupby(["sample_id", "bin"]).size()
    main = work[work["main"]]
    means = main.groupby(["sample_id", "bin"])[probs].mean()
    with_face = main.groupby(["sample_id", "bin"]).size()
    spans = work.groupby("sample_id")["bin"].agg(["min", "max"])
    full = pd.MultiIndex.from_tuples(
        [(sid, b) for sid, (lo, hi) in spans.iterrows() for b in range(lo, hi + 1)],
        names=["sample_id", "bin"],
    )
    summary = means.reindex(full)
    summary.insert(0, "with_face", with_face.reindex(full, fill_value=0).to_numpy())
    summary.insert(0, "frames", frames.reindex(full, fill_value=0).to_numpy())
    values = summary[probs].to_numpy()
    has = ~np.isnan(values).all(axis=1)
    top = np.full(len(summary), "", dtype=object)
    top[has] = [probs[j][len(PROB_PREFIX) :] for j in np.nanargmax(values[has], axis=1)]
    summary["label"] = top
    summary = summary.reset_index()
    summary.insert(1, "start", summary.pop("bin") * seconds)
    return summary
