"""One driver per search name: an advisory lock beside the search's Ray Tune state.

    with SearchLock(config.storage_path, config.name) as holder:   # "pid 123 on node-1 since ..."
        ...  # run or resume the search

The lock is ``fcntl.flock`` on ``<storage_path>/.<name>.lock`` (for an ``s3://``-style storage path,
a file under ``~/.cache/avfusion/locks``): the kernel drops it when the driver exits, however it
exits (a crash or SIGKILL included), so a stale lock never blocks. A second driver on the same name
fails at once with one line naming the holder, which the lock file and the parent run's
``avfusion.driver`` tag record. Taking the lock also proves the storage path writable, before Ray
starts or any run is created.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from avcore import guards
from search.errors import SearchError


def lock_path(storage_path: str, name: str) -> Path:
    guards.check_name(name, "search name")
    if "://" in storage_path:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = cache / "avfusion" / "locks" / guards.folder_name(storage_path)
    else:
        folder = Path(storage_path).resolve()
    return folder / f".{name}.lock"


class SearchLock:
    """Held from ``__enter__`` to ``__exit__`` (or the process's end)."""

    def __init__(self, storage_path: str, name: str) -> None:
        self.name = name
        self.path = lock_path(storage_path, name)
        self.holder = (
            f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}"
        )
        self._file = None

    def __enter__(self) -> str:
        try:
            guards.check_writable(self.path.parent, "storage_path")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")  # noqa: SIM115 - held for the driver's life
        except (guards.GuardError, OSError) as exc:
            raise SearchError(f"search {self.name!r}: {exc}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            other = handle.read().strip() or "another driver"
            handle.close()
            raise SearchError(
                f"search {self.name!r} is already driven by {other} (lock {self.path}); "
                "wait for it to end, or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(self.holder)
        handle.flush()
        self._file = handle
        return self.holder

    def __exit__(self, *exc_info) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
