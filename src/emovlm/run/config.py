"""A run's resolved configuration, its stable key, and the run folder's config.yaml."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

import emovlm
from emovlm.errors import InputError
from emovlm.labels import LABEL_SPACES, LabelSpace
from emovlm.run.plain import to_plain

CONFIG_FILE = "config.yaml"
"""Name of the file, inside a run folder, that lists the folder's configurations."""

_KEY_LENGTH = 16


def resolve_config(
    dataset_config: Mapping[str, Any],
    recognizer_name: str,
    recognizer_config: Mapping[str, Any],
    label_space: LabelSpace,
) -> dict[str, Any]:
    """The plain settings that determine a run's rows: dataset, recognizer and label set."""
    if not isinstance(dataset_config, Mapping):
        raise InputError(
            f"dataset_config must be a mapping (name, root, split, fold, options), "
            f"not {type(dataset_config).__name__}"
        )
    return {
        "dataset": to_plain(dataset_config, "dataset_config"),
        "recognizer": {
            "name": recognizer_name,
            "config": to_plain(recognizer_config, f"config() of recognizer {recognizer_name!r}"),
        },
        "label_set": {
            "name": label_space.name,
            "labels": list(label_space.labels),
            "multi_label": label_space.multi_label,
            "has_vad": label_space.has_vad,
        },
    }


def config_key(config: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit hash of a resolved configuration (same settings, same key)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:_KEY_LENGTH]


def read_configs(run_dir: Path) -> list[dict[str, Any]]:
    """The configurations recorded in a run folder's config.yaml, oldest first (empty if none)."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return []
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(
            f"{path} is not valid YAML ({exc}); restore it or pick another --run-dir"
        ) from exc
    entries = document.get("configurations") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and "key" in e for e in entries
    ):
        raise InputError(
            f"{path} has no 'configurations' list of entries with a 'key'; "
            "it was not written by emovlm, restore it or pick another --run-dir"
        )
    return entries


def record_config(run_dir: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Add a configuration to config.yaml unless its key is there; return its recorded entry."""
    key = config_key(config)
    entries = read_configs(run_dir)
    for entry in entries:
        if entry["key"] == key:
            return entry
    entry = {
        "key": key,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "emovlm_version": emovlm.__version__,
        **config,
    }
    _write_atomically(run_dir / CONFIG_FILE, {"configurations": [*entries, entry]})
    return entry


def record_execution(run_dir: Path, key: str, stats: Mapping[str, Any]) -> dict[str, Any]:
    """Set the `execution` facts (how the last run of `key` went) of its entry; return the entry."""
    entries = read_configs(run_dir)
    entry = next(e for e in entries if e["key"] == key)
    entry["execution"] = to_plain(stats, f"execution facts of configuration {key}")
    _write_atomically(run_dir / CONFIG_FILE, {"configurations": entries})
    return entry


def find_config(run_dir: Path, key: str | None) -> dict[str, Any]:
    """The entry whose key is `key` (or a unique prefix of it); the only one when `key` is None."""
    entries = read_configs(run_dir)
    keys = ", ".join(e["key"] for e in entries)
    if not entries:
        raise InputError(
            f"{run_dir / CONFIG_FILE} lists no configurations; run `emovlm eval` first"
        )
    if key is None:
        if len(entries) > 1:
            raise InputError(
                f"{run_dir} holds several configurations ({keys}); choose one with --key"
            )
        return entries[0]
    matches = [e for e in entries if str(e["key"]).startswith(key)]
    if len(matches) != 1:
        problem = "matches no" if not matches else "matches more than one"
        raise InputError(f"--key {key!r} {problem} configuration in {run_dir}; known keys: {keys}")
    return matches[0]


def label_space_of(entry: Mapping[str, Any]) -> LabelSpace:
    """The label space a recorded configuration was run in (the built-in one when it matches)."""
    label_set = entry["label_set"]
    labels = tuple(label_set["labels"])
    builtin = LABEL_SPACES.get(label_set["name"])
    if builtin is not None and builtin.labels == labels:
        return builtin
    return LabelSpace(
        label_set["name"],
        labels,
        multi_label=bool(label_set.get("multi_label", False)),
        has_vad=bool(label_set.get("has_vad", False)),
    )


def report_dir(run_dir: Path, key: str) -> Path:
    """Where a configuration's report goes: the run folder for the first one, else reports/KEY."""
    entries = read_configs(run_dir)
    if entries and entries[0]["key"] == key:
        return run_dir
    return run_dir / "reports" / key


def _write_atomically(path: Path, document: Mapping[str, Any]) -> None:
    """Write YAML to a temporary file beside `path` and move it into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(
        yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    os.replace(temporary, path)
