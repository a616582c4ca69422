"""Output folders: checked before the work starts, replaced only when we wrote them, swapped in
whole.

``prepare_out(out, force=..., marker="ensemble.json")`` runs before any work: an existing ``out``
needs ``--force``, and ``--force`` replaces only a folder holding ``marker`` (what we wrote) or an
empty one; the nearest existing folder must take a new entry (a read-only folder fails here, not
after training). Outputs are written to ``staging_dir(out)`` (``.NAME.tmp-PID`` beside ``out``)
and ``swap_in`` renames it into place; ``remove_stale_staging`` clears what killed runs left.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from avcore.errors import GuardError

_STAGING = r"^\.{name}\.(?:tmp|old)-(\d+)(?:-[0-9a-f]+)?$"


def check_writable(path: str | os.PathLike[str], what: str = "--out") -> None:
    """``path`` (to be made) can be created: its nearest existing folder takes a new entry."""
    path = Path(path).absolute()
    parent = path if path.is_dir() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise GuardError(f"{what} {path}: {parent} is a file, not a folder")
    try:
        tempfile.TemporaryDirectory(dir=parent, prefix=".avfusion-probe-").cleanup()
    except OSError as exc:
        raise GuardError(f"{what} {path}: cannot write in {parent} ({exc.strerror})") from None


def prepare_out(
    out: str | os.PathLike[str], *, force: bool, marker: str, what: str = "--out"
) -> Path:
    """Refuse, before any work, an ``out`` that exists without ``force``, one that ``force`` may
    not replace (it holds files but no ``marker``), and one that cannot be written."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not force:
            raise GuardError(f"{what} {out} exists; pass --force to replace it")
        if out.is_symlink() or not out.is_dir():
            raise GuardError(f"{what} {out} is not a folder; --force replaces only our outputs")
        if any(out.iterdir()) and not (out / marker).is_file():
            raise GuardError(
                f"{what} {out} holds files but no {marker}, so avfusion did not write it; "
                "--force replaces only our outputs (choose another --out)"
            )
    check_writable(out, what)
    return out


def staging_dir(out: Path) -> Path:
    """This process's hidden staging folder beside ``out``, stale ones of dead runs removed."""
    remove_stale_staging(out)
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the ``.NAME.tmp-PID`` / ``.NAME.old-PID`` folders beside ``out`` (NAME its name)
    whose PID is gone (a SIGKILLed run's); a live PID's staging folder is another run's work and
    stays, and no other hidden folder is touched."""
    removed: list[Path] = []
    if not out.parent.is_dir():
        return removed
    pattern = re.compile(_STAGING.format(name=re.escape(out.name)))
    for entry in out.parent.iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink() and not _alive(int(match[1])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def swap_in(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an existing ``out`` (checked by ``prepare_out``) is moved
    aside first and removed only once the new one is in place."""
    if out.exists():
        retired = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        os.rename(out, retired)
        os.rename(staging, out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, out)
