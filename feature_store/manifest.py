"""Read the manifest CSV a store build starts from: one row per clip, ``clip_id,path,split,label``
and, where the protocol has them, ``fold`` (1..k: the fold whose test the clip is in) and
``speaker``.

``label`` is a class name matched case-insensitively to the manifest's classes (empty for an
unlabelled test clip). The classes come from ``MANIFEST.yaml`` beside the CSV (written by
``feature_store manifest``, see ``feature_store.manifest_spec``), else from ``classes=`` (the
CLI's ``--classes A,B,C``), else AFEW's when every label is one of them. A relative ``path``
resolves against the manifest's own folder. Every problem is a ``ManifestError`` naming the file,
the line and what was expected::

    >>> from feature_store.manifest import read_manifest
    >>> clips = read_manifest("data/afew/manifest.csv")   # clip_id, path, split, label (int, -1)
    >>> clips.attrs["spec"].classes                        # the ManifestSpec: classes, protocol
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from avcore import guards
from avcore.datasets import class_index, default_classes
from feature_store.errors import StoreError
from feature_store.manifest_spec import ManifestSpec, read_spec, spec_path
from feature_store.store import SPLITS

COLUMNS: tuple[str, ...] = ("clip_id", "path", "split", "label")
OPTIONAL_COLUMNS: tuple[str, ...] = ("fold", "speaker")


class ManifestError(StoreError):
    """The manifest CSV is missing, malformed, or names a clip, split or label it cannot."""


def read_manifest(
    path: str | os.PathLike[str], *, classes: Sequence[str] | None = None
) -> pd.DataFrame:
    """The manifest as a DataFrame: ``clip_id`` (str), ``path`` (absolute str), ``split`` and
    ``label`` (int, index into the classes, -1 for an unlabelled test clip), ``fold`` (int, 0 when
    none) and ``speaker`` (str) when the CSV has them, in file order. ``attrs["spec"]`` is the
    ``ManifestSpec`` (dataset, classes, protocol) the labels were read with."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    spec = _spec(path, classes)
    index = class_index(spec.classes)
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
            columns = COLUMNS + tuple(name for name in OPTIONAL_COLUMNS if name in header)
            # The header is line 1, so the first record is line 2.
            rows = [
                _parse_row(path, line, row, spec, index, columns)
                for line, row in enumerate(reader, start=2)
            ]
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
    _check_folds(path, rows, spec)
    frame = pd.DataFrame([row for _, row in rows], columns=list(columns))
    types = {"clip_id": str, "path": str, "split": str, "label": "int64", "fold": "int64"}
    frame = frame.astype({k: v for k, v in types.items() if k in columns})
    frame.attrs["spec"] = spec
    return frame


def _spec(path: Path, classes: Sequence[str] | None) -> ManifestSpec:
    """What the labels mean: MANIFEST.yaml, else ``classes``, else AFEW's (checked per row)."""
    spec = read_spec(path)
    if spec is not None:
        if classes is not None and tuple(classes) != spec.classes:
            raise ManifestError(
                f"{path}: --classes {','.join(classes)} differ from {spec_path(path).name}'s "
                f"{','.join(spec.classes)}; drop one"
            )
        return spec
    if classes is not None:
        names = tuple(name.strip() for name in classes if name.strip())
        if len(names) < 2 or len({n.lower() for n in names}) != len(names):
            raise ManifestError(f"--classes: need at least two distinct names, got {classes}")
        return ManifestSpec(dataset="custom", classes=names)
    return ManifestSpec(dataset="afew", classes=default_classes())


def _check_folds(path: Path, rows: list[tuple[int, dict[str, object]]], spec: ManifestSpec) -> None:
    """Fold protocols: every clip names a fold in 1..k; fixed ones name none."""
    folds = spec.protocol.folds
    for line, row in rows:
        fold = int(row.get("fold", 0))  # type: ignore[call-overload]
        if spec.protocol.has_folds and not 1 <= fold <= folds:
            raise ManifestError(
                f"{path}:{line}: clip {row['clip_id']!r} has fold {fold}; the "
                f"{spec.protocol.kind} protocol has folds 1..{folds}"
            )
        if not spec.protocol.has_folds and fold:
            raise ManifestError(
                f"{path}:{line}: clip {row['clip_id']!r} has fold {fold}, but the protocol is "
                f"fixed (write the protocol in {spec_path(path).name})"
            )


def _parse_row(
    path: Path,
    line: int,
    row: dict[str, str | None],
    spec: ManifestSpec,
    index: dict[str, int],
    columns: tuple[str, ...],
) -> tuple[int, dict[str, object]]:
    if None in row:  # csv puts surplus fields under the key None
        raise ManifestError(f"{path}:{line}: more fields than the {len(row) - 1} header columns")
    values = {name: (row.get(name) or "").strip() for name in columns}
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
        label = index.get(label_name.lower())
        if label is None:
            hint = "" if spec_path(path).is_file() else " (other classes: --classes A,B,C)"
            raise ManifestError(
                f"{path}:{line}: clip {values['clip_id']!r} has unknown label {label_name!r}; "
                f"expected one of {', '.join(spec.classes)}{hint}"
            )
    clip_path = Path(values["path"]).expanduser()
    if not clip_path.is_absolute():
        clip_path = path.parent.resolve() / clip_path
    parsed: dict[str, object] = {
        "clip_id": values["clip_id"],
        "path": str(clip_path),
        "split": split,
        "label": label,
    }
    if "fold" in columns:
        try:
            parsed["fold"] = int(values["fold"] or 0)
        except ValueError:
            raise ManifestError(
                f"{path}:{line}: clip {values['clip_id']!r} has fold {values['fold']!r}; "
                "expected a whole number"
            ) from None
    if "speaker" in columns:
        parsed["speaker"] = values["speaker"]
    return line, parsed
