"""Nothing left behind by a killed driver: ``python -m search.watchdog DRIVER_PID``.

A local search starts Ray's processes (GCS, raylet, its agents, workers) as the driver's
descendants. ``ray.shutdown`` ends them when the driver exits normally; a SIGKILLed driver runs no
code, and Ray's agents outlive it for good. The driver therefore starts this small process (in its
own session, so a Ctrl+C to the driver's group does not reach it): it notes the driver's
descendants every second and, once the driver is gone, ends every noted process that is still
the same process (pid and start time), with SIGTERM and then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

POLL_S = 1.0
GRACE_S = 3.0


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, from /proc; None once it has exited."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":  # exited, not yet reaped: as good as gone
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every process below ``root``."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            table[int(entry)] = stat
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = started
                frontier.append(pid)
    return found


def same_process(pid: int, started: int) -> bool:
    """``pid`` is still the process that started at ``started`` (not a reused pid)."""
    stat = _stat(pid)
    return stat is not None and stat[1] == started


def watch(driver: int) -> None:
    noted: dict[int, int] = {}
    while _stat(driver) is not None:
        noted.update(descendants(driver))
        noted.pop(os.getpid(), None)
        time.sleep(POLL_S)
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, 0.0)):
        alive = {pid: s for pid, s in noted.items() if same_process(pid, s)}
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = {pid: s for pid, s in alive.items() if same_process(pid, s)}
        if not alive:
            return


def start(driver: int | None = None) -> subprocess.Popen:
    """The watchdog of this process (or ``driver``), detached from its terminal and signals."""
    return subprocess.Popen(
        [sys.executable, "-m", "search.watchdog", str(driver or os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


if __name__ == "__main__":
    watch(int(sys.argv[1]))
