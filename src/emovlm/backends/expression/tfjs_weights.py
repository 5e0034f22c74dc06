"""Read TensorFlow.js weights: a manifest plus binary shards, with uint8/uint16 dequantization."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emovlm.errors import InputError

_PLAIN = {"float32": np.dtype("<f4")}
_QUANTIZED = {"uint8": np.dtype("u1"), "uint16": np.dtype("<u2")}


def read_tfjs_weights(manifest_path: Path, shard_paths: Sequence[Path]) -> dict[str, np.ndarray]:
    """Every weight in the manifest by name, as float32 arrays in TF layout (kh, kw, in, out).

    `shard_paths` are the binary files the manifest's groups name, in the manifest's order.
    Quantized weights are restored as `value * scale + min`, as TF.js does when it loads them.
    """
    groups = json.loads(Path(manifest_path).read_text())
    expected = [path for group in groups for path in group["paths"]]
    given = [Path(p).name for p in shard_paths]
    if [Path(p).name for p in expected] != given:
        raise InputError(f"{manifest_path} names shards {expected}, but {given} were given")
    shards = iter(shard_paths)
    weights: dict[str, np.ndarray] = {}
    for group in groups:
        buffer = b"".join(Path(next(shards)).read_bytes() for _ in group["paths"])
        offset = 0
        for spec in group["weights"]:
            weights[spec["name"]], offset = _read_weight(spec, buffer, offset)
        if offset != len(buffer):
            raise InputError(
                f"{manifest_path}: shards hold {len(buffer)} bytes, the manifest describes {offset}"
            )
    return weights


def _read_weight(spec: dict, buffer: bytes, offset: int) -> tuple[np.ndarray, int]:
    count = int(np.prod(spec["shape"], dtype=np.int64))
    quantization = spec.get("quantization")
    stored = _QUANTIZED.get(quantization["dtype"]) if quantization else _PLAIN.get(spec["dtype"])
    if stored is None:
        raise InputError(
            f"TF.js weight {spec['name']!r} uses an unsupported dtype or quantization: {spec}"
        )
    end = offset + count * stored.itemsize
    if end > len(buffer):
        raise InputError(f"TF.js weight {spec['name']!r} runs past the end of its shards")
    values = np.frombuffer(buffer, dtype=stored, count=count, offset=offset)
    if quantization:
        values = (values.astype(np.float64) * quantization["scale"] + quantization["min"]).astype(
            np.float32
        )
    else:
        values = values.copy()
    return values.reshape(spec["shape"]), end
