"""A user's own list of samples: CSV, TSV or JSON Lines with path, label(s) and optional box."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emovlm.data.base import AnnotatedDataset, as_bool
from emovlm.data.manifest_rows import Row, columns_of, numbers, read_rows, split_labels, text_of
from emovlm.data.paths import find_first, is_inside, under
from emovlm.errors import InputError
from emovlm.labels import LABEL_SPACES, get_label_space
from emovlm.types import Box, Sample

DEFAULT_NAMES = ("manifest.csv", "manifest.jsonl", "manifest.tsv")
BOX_COLUMNS = ("x1", "y1", "x2", "y2")
KNOWN_COLUMNS = frozenset({"id", "path", "label", "labels", "box", "vad", "split", *BOX_COLUMNS})


class Manifest(AnnotatedDataset):
    """Rows of `id` (optional, default: the path), `path`, `label` or `labels`, optional `box`.

    Paths are relative to the dataset root (the manifest's folder when --root is the manifest
    itself) or absolute; a path outside the root is refused unless allow_outside_root=True.
    `labels` holds several labels as a list (JSONL) or separated by ';' or '|'. A `box` is
    "x1,y1,x2,y2" in pixels (or columns x1, y1, x2, y2); `vad` is three numbers. When the file has
    a `split` column, only rows of the chosen split are kept. Other columns go to `meta`.
    """

    name = "manifest"
    streamed = True

    def __init__(
        self,
        root: Path,
        split: str = "test",
        fold: int = 1,
        *,
        label_set: str | None = None,
        manifest: str | Path | None = None,
        allow_outside_root: bool | str = False,
    ) -> None:
        super().__init__(root, split, fold)
        if label_set is None:
            raise InputError(
                "a manifest needs label_set=NAME, the label set its labels belong to "
                f"(one of: {', '.join(LABEL_SPACES)})"
            )
        self.label_space = get_label_space(label_set)
        self._check_fold(1)
        self.manifest, self.media_root = _locate(self.root, manifest)
        self.allow_outside_root = as_bool(allow_outside_root, "allow_outside_root")
        self._splits_seen: set[str] = set()
        _check_header(self.manifest)
        self._load(
            self._read(),
            self.manifest,
            {
                "label_set": self.label_space.name,
                "manifest": self.manifest,
                "allow_outside_root": self.allow_outside_root,
            },
        )
        if not len(self):
            others = (
                f" (its splits: {', '.join(sorted(self._splits_seen))})"
                if self._splits_seen
                else ""
            )
            raise InputError(
                f"{self.manifest} has no rows for split {self.split!r}{others}; "
                "choose --split or add rows"
            )

    def _read(self) -> Iterator[Sample]:
        for line, row in read_rows(self.manifest):
            where = f"{self.manifest} line {line}"
            if "split" in row:
                row_split = text_of(row["split"])
                self._splits_seen.add(row_split)
                if row_split != self.split:
                    continue
            path_text = text_of(row.get("path"))
            if not path_text:
                raise InputError(f"{where}: no path; every row needs a path to its image or video")
            yield Sample(
                id=text_of(row.get("id")) or path_text,
                media=self._media(path_text, where),
                labels=self._labels(row, where),
                box=_box(row, where),
                vad=_vad(row, where),
                meta={k: v for k, v in row.items() if k not in KNOWN_COLUMNS},
            )

    def _media(self, path_text: str, where: str) -> Path:
        media = under(self.media_root, path_text)
        if not self.allow_outside_root and not is_inside(media, self.media_root):
            raise InputError(
                f"{where}: path {path_text!r} resolves outside the dataset root {self.media_root}; "
                "move the file under the root, or open the dataset with allow_outside_root=True"
            )
        return media

    def _labels(self, row: Row, where: str) -> tuple[str, ...]:
        names = split_labels(row.get("labels", row.get("label")))
        if not names:
            raise InputError(f"{where}: no label; fill the label (or labels) column")
        labels: list[str] = []
        for name in names:
            label = self.label_space.normalize(name)
            if label is None:
                raise InputError(
                    f"{where}: label {name!r} is not in label set {self.label_space.name} "
                    f"({', '.join(self.label_space.labels)}); fix the row or choose another "
                    f"label_set (one of: {', '.join(LABEL_SPACES)})"
                )
            labels.append(label)
        unique = tuple(dict.fromkeys(labels))
        if len(unique) > 1 and not self.label_space.multi_label:
            raise InputError(
                f"{where}: {len(unique)} labels ({', '.join(unique)}) but label set "
                f"{self.label_space.name} is single-label; keep one label per row"
            )
        return unique


def _locate(root: Path, manifest: str | Path | None) -> tuple[Path, Path]:
    """(manifest file, media root): --root may be the manifest itself or the folder holding it."""
    if root.is_file():
        if manifest is not None:
            raise InputError(f"--root {root} is already a manifest file; drop manifest={manifest}")
        return root, root.parent
    if manifest is not None:
        path = under(root, manifest)
        if not path.is_file():
            raise InputError(f"manifest {path} does not exist; check the manifest= option")
        return path, root
    found = find_first(root, DEFAULT_NAMES, want_dir=False)
    if found is None:
        raise InputError(
            f"no manifest in {root} (looked for {', '.join(DEFAULT_NAMES)}); name "
            "the file with manifest=PATH or pass it as --root"
        )
    return found, root


def _check_header(path: Path) -> None:
    columns = columns_of(path)
    if columns is None:
        return
    missing = [] if "path" in columns else ["path"]
    if "label" not in columns and "labels" not in columns:
        missing.append("label (or labels)")
    if missing:
        raise InputError(
            f"{path} line 1: missing column(s) {', '.join(missing)} (found: "
            f"{', '.join(columns) or 'none'}); add a header row such as id,path,label"
        )


def _box(row: Row, where: str) -> Box | None:
    if "box" in row:
        value: Any = row["box"]
    elif all(text_of(row.get(c)) for c in BOX_COLUMNS):
        value = [row[c] for c in BOX_COLUMNS]
    else:
        return None
    try:
        box = numbers(value, 4)
    except ValueError as exc:
        raise InputError(f"{where}: box {value!r} is not x1,y1,x2,y2 in pixels ({exc})") from None
    if box is None:
        return None
    if box[2] <= box[0] or box[3] <= box[1]:
        raise InputError(
            f"{where}: box {value!r} must have x2 > x1 and y2 > y1 (x1,y1,x2,y2 "
            "in pixels, top-left origin)"
        )
    return box[0], box[1], box[2], box[3]


def _vad(row: Row, where: str) -> tuple[float, float, float] | None:
    try:
        vad = numbers(row.get("vad"), 3)
    except ValueError as exc:
        raise InputError(
            f"{where}: vad {row.get('vad')!r} is not valence,arousal,dominance ({exc})"
        ) from None
    return None if vad is None else (vad[0], vad[1], vad[2])
