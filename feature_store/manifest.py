"""Read the manifest CSV a store build starts from: one row per clip, ``clip_id,path,split,label``.

``label`` is an emotion name matched case-insensitively to ``CLASSES`` (empty for test clips);
a relative ``path`` resolves against the manifest's own folder. Every problem is a
``ManifestError`` naming the file, the line and what was expected::

    >>> from feature_store.manifest import read_manifest
    >>> clips = read_manifest("data/afew/manifest.csv")   # clip_id, path, split, label (int, -1)
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd

from avcore import guards
from avcore.afew import CLASSES
from feature_store.errors import StoreError
from feature_store.store import SPLITS

COLUMNS: tuple[str, ...] = ("clip_id", "path", "split", "label")
_CLASS_INDEX = {name.lower(): index for index, name in enumerate(CLASSES)}


class ManifestError(StoreError):
    """The manifest CSV is missing, malformed, or names a clip, split or label it cannot."""


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The manifest as a DataFrame: ``clip_id`` (str), ``path`` (absolute str), ``split`` and
    ``label`` (int, index into ``CLASSES``, -1 for an unlabelled test clip), in file order."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in (reader.fieldnames or [])]
            missing = [name for name in COLUMNS if name not in header]
            if missing:
                raise ManifestError(
                    f"{path}:1: missing column(s) {missing}; expected a header {','.join(COLUMNS)}"
                )
            reader.fieldnames = header
            # The header is line 1, so the first record is line 2.
            rows = [_parse_row(path, line, row) for line, row in enumerate(reader, start=2)]
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except csv.Error as exc:
        raise ManifestError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise ManifestError(f"{path}: no clips listed")
    first_line: dict[str, int] = {}
    for line, row in rows:
        clip_id = row["clip_id"]
        if clip_id in first_line:
            raise ManifestError(
                f"{path}:{line}: duplicate clip id {clip_id!r} (first on line {first_line[clip_id]})"
            )
        first_line[clip_id] = line
    frame = pd.DataFrame([row for _, row in rows], columns=list(COLUMNS))
    return frame.astype({"clip_id": str, "path": str, "split": str, "label": "int64"})


def _parse_row(path: Path, line: int, row: dict[str, str | None]) -> tuple[int, dict[str, object]]:
    if None in row:  # csv puts surplus fields under the key None
        raise ManifestError(f"{path}:{line}: more fields than the {len(COLUMNS)} header columns")
    values = {name: (row.get(name) or "").strip() for name in COLUMNS}
    if not values["clip_id"]:
        raise ManifestError(f"{path}:{line}: empty clip_id")
    # A clip id becomes a file name (work files, submission entries): a name, never a path.
    reason = guards.unsafe_reason(values["clip_id"])
    if reason:
        raise ManifestError(
            f"{path}:{line}: clip id {values['clip_id']!r} {reason}; clip ids are names, not paths"
        )
    if not values["path"]:
        raise ManifestError(f"{path}:{line}: clip {values['clip_id']!r} has an empty path")
    split = values["split"].lower()
    if split not in SPLITS:
        raise ManifestError(
            f"{path}:{line}: clip {values['clip_id']!r} has split {values['split']!r}; "
            f"expected one of {', '.join(SPLITS)}"
        )
    label_name = values["label"]
    if not label_name:
        if split != "test":
            raise ManifestError(
                f"{path}:{line}: clip {values['clip_id']!r} is in {split} but has no label"
            )
        label = -1
    else:
        label = _CLASS_INDEX.get(label_name.lower())
        if label is None:
            raise ManifestError(
                f"{path}:{line}: clip {values['clip_id']!r} has unknown label {label_name!r}; "
                f"expected one of {', '.join(CLASSES)}"
            )
    clip_path = Path(values["path"]).expanduser()
    if not clip_path.is_absolute():
        clip_path = path.parent.resolve() / clip_path
    return line, {
        "clip_id": values["clip_id"],
        "path": str(clip_path),
        "split": split,
        "label": label,
    }
