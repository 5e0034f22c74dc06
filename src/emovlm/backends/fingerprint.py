"""Content fingerprints of model folders, cheap enough to compute on every run without loading weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack"}
_PROBE_BYTES = 1 << 20


def weight_digest(path: Path) -> str:
    """Hash of a weight file's size, first and last MiB (full hashes of GB files are too slow)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        digest.update(fh.read(_PROBE_BYTES))
        if size > 2 * _PROBE_BYTES:
            fh.seek(size - _PROBE_BYTES)
            digest.update(fh.read(_PROBE_BYTES))
    return digest.hexdigest()


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 over a model folder: small files by full content, weight files by size and ends."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        if path.suffix in _WEIGHT_SUFFIXES:
            digest.update(weight_digest(path).encode())
        else:
            digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode())
    return digest.hexdigest()
