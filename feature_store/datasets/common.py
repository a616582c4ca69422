"""What every dataset reader shares: the row it yields (``Clip``), what it hands back
(``Listing``: the clips, the excluded counts with their reasons), the one-line error naming a
file and line, the media index of a folder, and the speaker-independent fold assignment.

Readers use only the standard library, so ``python -m feature_store manifest --help`` stays cheap.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from avcore.datasets import DatasetProfile
from feature_store.errors import StoreError

MISSING = "missing file"
_LFS_POINTER = b"version https://git-lfs"


class DatasetError(StoreError):
    """The dataset's tree is not laid out as its authors distribute it, or one of its label lists
    holds a row that cannot be read: one line naming the file (and line) and what was expected."""


def row_error(path: Path, line: int, message: str) -> DatasetError:
    """``path:line: message``, the form ``read_manifest`` reports a bad row in."""
    return DatasetError(f"{path}:{line}: {message}")


@dataclass(frozen=True)
class Clip:
    """One manifest row: ``path`` absolute, ``label`` a class name exactly as in the profile (empty
    for an unlabelled test clip), ``fold`` 1..k for fold protocols (0 for fixed)."""

    clip_id: str
    path: Path
    split: str
    label: str
    fold: int = 0
    speaker: str = ""


@dataclass
class Listing:
    """A reader's answer: the clips in file order, and the clips left out, counted by reason."""

    clips: list[Clip] = field(default_factory=list)
    excluded: Counter[str] = field(default_factory=Counter)
    first_missing: Path | None = None

    def missing(self, path: Path) -> None:
        """A listed clip whose media file is not there: counted, the first one named."""
        self.excluded[MISSING] += 1
        if self.first_missing is None:
            self.first_missing = path


@dataclass(frozen=True)
class Reader:
    """A dataset: its profile (classes, protocol), the layout it follows (cited in the YAML's
    ``source``) and the function reading a tree of that layout."""

    profile: DatasetProfile
    source: str
    read: Callable[[Path], Listing]


def require_dir(root: Path, candidates: Iterable[str], what: str) -> Path:
    """The first of ``candidates`` (relative to ``root``) that is a folder; else one line naming
    them all."""
    tried = list(candidates)
    for name in tried:
        if (root / name).is_dir():
            return root / name
    raise DatasetError(f"{root}: no {what} folder (expected {' or '.join(tried)})")


def index_media(folder: Path, suffixes: tuple[str, ...], *, recursive: bool) -> dict[str, Path]:
    """``file name -> path`` of the media files in ``folder`` (macOS ``._`` files and hidden files
    skipped); a name found twice is one line naming both places."""
    found: dict[str, Path] = {}
    walk = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for directory, subdirs, names in walk:
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or not name.lower().endswith(suffixes):
                continue
            path = Path(directory) / name
            if name in found:
                raise DatasetError(
                    f"{path}: the same clip is also at {found[name]}; keep one copy under {folder}"
                )
            found[name] = path
    return found


def check_media(path: Path) -> None:
    """A git-lfs pointer in place of a video (a repository downloaded as a zip, not cloned) is one
    line saying so, not a clip that fails later."""
    if path.stat().st_size < 1024:
        with open(path, "rb") as handle:
            if handle.read(len(_LFS_POINTER)) == _LFS_POINTER:
                raise DatasetError(
                    f"{path}: a git-lfs pointer, not a media file; fetch the media with "
                    "`git lfs pull` (or clone with git lfs)"
                )


def safe_id(path: Path, clip_id: str) -> str:
    """``clip_id`` when it can be a file name, else one line naming the file."""
    from avcore.guards import unsafe_reason

    reason = unsafe_reason(clip_id)
    if reason:
        raise DatasetError(f"{path}: clip id {clip_id!r} {reason}")
    return clip_id


def _speaker_key(speaker: str) -> tuple[int, int, str]:
    return (0, int(speaker), speaker) if speaker.isdigit() else (1, 0, speaker)


def speaker_folds(
    speakers: Iterable[str], folds: int, seed: int, assignment: str = "shuffled"
) -> dict[str, int]:
    """Speaker-independent folds 1..k (sizes differ by at most one; no speaker in two folds):
    ``shuffled``, the sorted speaker ids shuffled with ``random.Random(seed)`` and dealt round
    robin; ``blocks``, the sorted ids cut into k contiguous blocks, the first ones a speaker larger
    where k does not divide them (RAVDESS's 24 actors in 6 folds: 1-4, 5-8, ..., as MAE-DFER)."""
    ordered = sorted(set(speakers), key=_speaker_key)
    if not 2 <= folds <= len(ordered):
        raise DatasetError(
            f"--folds {folds}: need 2 to {len(ordered)} folds for {len(ordered)} speakers"
        )
    if assignment == "blocks":
        size, larger = divmod(len(ordered), folds)
        bounds = [k * size + min(k, larger) for k in range(folds + 1)]
        return {
            speaker: k + 1 for k in range(folds) for speaker in ordered[bounds[k] : bounds[k + 1]]
        }
    random.Random(seed).shuffle(ordered)
    return {speaker: index % folds + 1 for index, speaker in enumerate(ordered)}


def numbered(pattern: str, root: Path, what: str, count: int) -> dict[int, Path]:
    """``k -> path`` for k = 1..``count``: the files below ``root`` whose path (relative, POSIX)
    matches ``pattern`` with the fold number as its group 1, e.g. ``set_(\\d+)/test.txt``."""
    found: dict[int, Path] = {}
    regex = re.compile(pattern)
    for path in sorted(root.rglob("*")):
        match = regex.fullmatch(path.relative_to(root).as_posix())
        if match:
            found[int(match[1])] = path
    if not found:
        raise DatasetError(f"{root}: no {what} ({pattern})")
    expected = list(range(1, count + 1))
    if sorted(found) != expected:
        lacking = sorted(set(expected) - set(found))
        if lacking:
            raise DatasetError(f"{root}: the {what} lack set_{lacking[0]} (expected 1..{count})")
        raise DatasetError(f"{root}: {what} beyond set_{count}: {sorted(found)}")
    return found
