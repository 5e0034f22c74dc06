"""An exclusive lock on a run folder, so two processes never write the same run at once."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from emovlm.errors import InputError

LOCK_FILE = ".lock"
"""Name of the lock file inside a run folder; it holds the id of the process that holds it."""


class RunFolderInUseError(InputError):
    """Another process holds the lock of the run folder."""


class RunLock:
    """An flock on `run_dir/.lock`; the kernel drops it when its process ends, even on SIGKILL."""

    def __init__(self, run_dir: Path) -> None:
        """Prepare the lock of `run_dir` (the folder is created on acquire)."""
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise RunFolderInUseError naming the folder and the holder's pid."""
        if self._fd is not None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderInUseError(
                f"run folder {self.run_dir} is in use by another emovlm process (pid {holder}); "
                "wait for it to finish, stop it, or pick another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the lock file stays, so no other process can race on its removal)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> RunLock:
        """Acquire the lock for a `with` block."""
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Release the lock."""
        self.release()
