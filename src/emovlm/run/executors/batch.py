"""How worker processes and Ray actors get their own copy of the run's recognizer."""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from emovlm.errors import EmovlmError, InputError
from emovlm.recognizers.base import Recognizer
from emovlm.run.plain import to_plain

RecognizerFactory = Callable[[], Recognizer]
"""A picklable callable that builds a recognizer (in a worker process or a Ray actor)."""


@dataclass(frozen=True)
class WorkerRecognizer:
    """How a worker gets its own copy of the run's recognizer, checked to answer the same way.

    A worker calls `factory` when there is one, else unpickles the recognizer the run was started
    with; either way the copy's name and config() must equal the run's, so rows of one
    configuration key never come from another model (say, other weights on another node).
    """

    name: str
    config: Mapping[str, Any]
    factory: RecognizerFactory | None = None
    pickled: bytes | None = None

    def build(self) -> Recognizer:
        """The worker's recognizer; EmovlmError when it cannot be built or differs from the run's."""
        where = f"worker process {os.getpid()} on {socket.gethostname()}"
        try:
            recognizer = self.factory() if self.factory is not None else pickle.loads(self.pickled)
        except EmovlmError:
            raise
        except Exception as exc:
            raise EmovlmError(
                f"cannot build recognizer {self.name!r} in {where} ({type(exc).__name__}: {exc}); "
                "every worker needs emovlm, the recognizer's code and its packages"
            ) from exc
        config = to_plain(recognizer.config(), f"config() of recognizer {recognizer.name!r}")
        if recognizer.name != self.name or config != self.config:
            changed = sorted(
                k for k in set(config) | set(self.config) if config.get(k) != self.config.get(k)
            )
            raise InputError(
                f"the recognizer built in {where} differs from the run's ({recognizer.name!r}, "
                f"settings {', '.join(changed) or 'name'} differ); every worker must see the same "
                "model files, options and packages"
            )
        return recognizer


def worker_recognizer(
    recognizer: Recognizer, factory: RecognizerFactory | None = None
) -> WorkerRecognizer:
    """What workers need to rebuild `recognizer`: its factory, else its pickled self."""
    config = to_plain(recognizer.config(), f"config() of recognizer {recognizer.name!r}")
    if factory is not None:
        return WorkerRecognizer(recognizer.name, config, factory=factory)
    try:
        pickled = pickle.dumps(recognizer)
    except Exception as exc:
        raise InputError(
            f"recognizer {recognizer.name!r} cannot be sent to worker processes "
            f"({type(exc).__name__}: {exc}); pass recognizer_factory= to the executor "
            "(the `emovlm eval` command does), or run without workers"
        ) from None
    return WorkerRecognizer(recognizer.name, config, pickled=pickled)
