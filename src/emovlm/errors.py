"""Errors that emovlm shows to users: each message names the file or sample and the fix."""


class EmovlmError(Exception):
    """Base class of errors meant for the user; the CLI prints the message and exits non-zero."""


class InputError(EmovlmError):
    """Bad user input: a missing file, an unknown column or label, a malformed row."""


class MediaError(EmovlmError):
    """A sample's media cannot be read or decoded; recorded as a per-sample failure."""


class MissingAssetError(EmovlmError):
    """Model weights or demo media are missing and could not be fetched."""


class MissingDependencyError(EmovlmError):
    """An optional dependency is not installed; the message says what to install."""


class BackendError(EmovlmError):
    """Every request to this backend would fail (unreachable server, unknown model, no vision)."""
