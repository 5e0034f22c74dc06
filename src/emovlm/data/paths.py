"""Finding annotation files and media on disk for the dataset adapters (never opens media)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from emovlm.errors import InputError

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES


def under(root: Path, relative: str | Path) -> Path:
    """`relative` joined to `root`, or `relative` itself when it is absolute."""
    path = Path(relative).expanduser()
    return path if path.is_absolute() else root / path


def find_first(root: Path, candidates: Sequence[str | Path], *, want_dir: bool) -> Path | None:
    """The first candidate (relative to root) that exists as a folder (or file), else None."""
    for candidate in candidates:
        path = under(root, candidate)
        if path.is_dir() if want_dir else path.is_file():
            return path
    return None


def locate_file(
    root: Path, given: str | Path | None, candidates: Sequence[str], *, what: str, option: str
) -> Path:
    """The annotation file the user named, else the first default that exists, else an error."""
    return _locate(root, given, candidates, what=what, option=option, want_dir=False)


def locate_dir(
    root: Path, given: str | Path | None, candidates: Sequence[str], *, what: str, option: str
) -> Path:
    """The media folder the user named, else the first default that exists, else an error."""
    return unwrap_nested(_locate(root, given, candidates, what=what, option=option, want_dir=True))


def _locate(
    root: Path,
    given: str | Path | None,
    candidates: Sequence[str],
    *,
    what: str,
    option: str,
    want_dir: bool,
) -> Path:
    """The folder (or file) the user named, else the first candidate that exists, else an error
    naming the places looked at and the option that names it."""
    if given is not None:
        path = under(root, given)
        if not (path.is_dir() if want_dir else path.is_file()):
            problem = "is not a folder" if want_dir else "does not exist"
            raise InputError(f"{what} {path} {problem}; check the {option}= option")
        return path
    found = find_first(root, candidates, want_dir=want_dir)
    if found is None:
        expected = " or ".join(str(root / c) for c in candidates)
        raise InputError(
            f"{what} not found under {root} (looked for {expected}); check --root, or name the "
            f"{'folder' if want_dir else 'file'} with {option}=PATH"
        )
    return found


def unwrap_nested(folder: Path) -> Path:
    """Skip the doubled folder an archive often leaves behind (X/X/...)."""
    while (folder / folder.name).is_dir():
        folder = folder / folder.name
    return folder


def index_media(folder: Path, key: Callable[[str], str | None]) -> dict[str, Path]:
    """Map media keys to paths: files with a media suffix or frame folders whose stem gives a key.

    Folders whose name gives no key (such as `part_1/`) are searched one level deeper, so both
    `clips/00001.mp4` and `clips/part_1/1.mp4` are found. The first entry in name order wins.
    """
    index: dict[str, Path] = {}
    for entry in _sorted_entries(folder):
        entry_key = _entry_key(entry, key)
        if entry_key is not None:
            index.setdefault(entry_key, Path(entry.path))
        elif entry.is_dir():
            for inner in _sorted_entries(Path(entry.path)):
                inner_key = _entry_key(inner, key)
                if inner_key is not None:
                    index.setdefault(inner_key, Path(inner.path))
    return index


def _sorted_entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _entry_key(entry: os.DirEntry[str], key: Callable[[str], str | None]) -> str | None:
    if entry.is_dir():
        return key(entry.name)
    suffix = Path(entry.name).suffix.lower()
    return key(Path(entry.name).stem) if suffix in MEDIA_SUFFIXES else None


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path`, normalised without following links, lies under `root` (or its real path)."""
    target = Path(os.path.normpath(os.path.abspath(path)))
    for base in {Path(os.path.normpath(os.path.abspath(root))), root.resolve()}:
        if target == base or base in target.parents:
            return True
    return False
