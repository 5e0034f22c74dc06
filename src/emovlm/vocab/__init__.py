"""Built-in word lists as data files: label definitions and the NarraCap vocabularies, with loaders.

`definitions.yaml` maps a label space to its labels' definitions. `narracap/` holds the four
NarraCap vocabularies: `who.yaml` (phrase → pronoun), and `where.txt`, `action.txt`,
`signals.txt` (one entry per line; blank lines and `#` comments are skipped). A user folder with
any of these four files replaces the built-in ones of the same name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from emovlm.errors import InputError

VOCAB_DIR = Path(__file__).parent
NARRACAP_DIR = VOCAB_DIR / "narracap"
NARRACAP_FILES = ("who.yaml", "where.txt", "action.txt", "signals.txt")


@cache
def _all_definitions() -> dict[str, dict[str, str]]:
    return yaml.safe_load((VOCAB_DIR / "definitions.yaml").read_text(encoding="utf-8"))


def load_definitions(label_set: str) -> dict[str, str]:
    """Label → definition for a label space (an empty mapping when it has none)."""
    return dict(_all_definitions().get(label_set, {}))


@dataclass(frozen=True)
class NarraCapVocabulary:
    """The four NarraCap word lists and the files they came from."""

    who: dict[str, str]
    where: tuple[str, ...]
    action: tuple[str, ...]
    signals: tuple[str, ...]
    sources: dict[str, str]

    def fingerprint(self) -> str:
        """SHA-256 of the lists' content (part of the recognizer's config)."""
        content = [self.who, self.where, self.action, self.signals]
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _lines(path: Path) -> tuple[str, ...]:
    rows = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return tuple(dict.fromkeys(row for row in rows if row and not row.startswith("#")))


def _who(path: Path) -> dict[str, str]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise InputError(f"{path}: write one 'phrase: Pronoun' pair per line, e.g. 'a man: He'")
    return data


def load_narracap_vocabulary(folder: str | Path | None = None) -> NarraCapVocabulary:
    """The built-in NarraCap vocabularies, each replaced by the same-named file in `folder`."""
    user = Path(folder).expanduser() if folder is not None else None
    if user is not None and not user.is_dir():
        raise InputError(f"--vocabulary {folder}: not a folder (it should hold {NARRACAP_FILES})")
    if user is not None and not any((user / name).is_file() for name in NARRACAP_FILES):
        raise InputError(f"--vocabulary {folder} holds none of {', '.join(NARRACAP_FILES)}")
    paths = {
        name: user / name if user is not None and (user / name).is_file() else NARRACAP_DIR / name
        for name in NARRACAP_FILES
    }
    lists = {name: _lines(path) for name, path in paths.items() if name != "who.yaml"}
    who = _who(paths["who.yaml"])
    for name, entries in [("who.yaml", tuple(who)), *lists.items()]:
        if not entries:
            raise InputError(f"{paths[name]} lists nothing; give at least one entry")
    return NarraCapVocabulary(
        who=who,
        where=lists["where.txt"],
        action=lists["action.txt"],
        signals=lists["signals.txt"],
        sources={name: str(path) for name, path in paths.items()},
    )
