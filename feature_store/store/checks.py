"""What ``open_store`` and ``Store.validate_deep`` check, each check one function that raises a
``CorruptStoreError`` (or ``NotAStoreError``) naming the file and the first clip or row at fault:
``store.json``'s keys and version, the clip table's columns, splits, labels and row ranges, a
file's sha256 against the one recorded at write time, and NaN/Inf in the features.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feature_store.errors import CorruptStoreError, NotAStoreError, StoreError
from feature_store.store.format import (
    CLIPS_FILE,
    FEATURES_FILE,
    FORMAT,
    META_FILE,
    MODALITIES,
    REQUIRED_COLUMNS,
    SPLITS,
    VERSION,
    sha256_file,
)


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise StoreError(f"split must be one of {SPLITS}, got {split!r}")


def check_hash(path: Path, meta: dict[str, Any], name: str, *, required: bool) -> None:
    """The file's sha256 against the one ``store.json`` recorded when the store was written."""
    expected = (meta.get("files") or {}).get(name)
    if expected is None:
        if required:
            raise CorruptStoreError(f"{path / META_FILE}: no checksum recorded for {name}")
        return
    actual = sha256_file(path / name)
    if actual != expected:
        raise CorruptStoreError(
            f"{path / name}: sha256 {actual[:12]}… differs from the recorded "
            f"{expected[:12]}… (file altered or corrupt)"
        )


def read_meta(path: Path) -> dict[str, Any]:
    """``store.json`` of the store at ``path``, its format, version and required keys checked."""
    meta_path = path / META_FILE
    if not path.is_dir():
        raise NotAStoreError(f"{path}: not a directory, so not a feature store")
    if not meta_path.is_file():
        raise NotAStoreError(f"{path}: no {META_FILE}, so not a feature store")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptStoreError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise NotAStoreError(f"{meta_path}: format is not {FORMAT!r}")
    version = meta.get("version")
    if not isinstance(version, int):
        raise CorruptStoreError(f"{meta_path}: version must be an integer, got {version!r}")
    if version > VERSION:
        raise StoreError(
            f"{meta_path}: format version {version} is newer than this avfusion reads "
            f"({VERSION}); upgrade avfusion"
        )
    if version < 1:
        raise CorruptStoreError(f"{meta_path}: unknown format version {version}")
    for key in ("modality", "dim", "dtype", "classes"):
        if key not in meta:
            raise CorruptStoreError(f"{meta_path}: missing key {key!r}")
    if meta["modality"] not in MODALITIES:
        raise CorruptStoreError(f"{meta_path}: modality must be one of {MODALITIES}")
    return meta


def check_clips(path: Path, clips: pd.DataFrame, meta: dict[str, Any], rows: int) -> None:
    """The clip table: its columns, unique ids, known splits, labels in range, row ranges inside
    the ``rows`` of the features file and not overlapping."""
    where = path / CLIPS_FILE
    missing = [c for c in REQUIRED_COLUMNS if c not in clips.columns]
    if missing:
        raise CorruptStoreError(f"{where}: missing column(s) {missing}")
    duplicated = clips["clip_id"].duplicated()
    if duplicated.any():
        raise CorruptStoreError(
            f"{where}: duplicate clip id {clips['clip_id'][duplicated].iloc[0]!r}"
        )
    bad_split = ~clips["split"].isin(SPLITS)
    if bad_split.any():
        row = clips[bad_split].iloc[0]
        raise CorruptStoreError(f"{where}: clip {row.clip_id!r} has unknown split {row.split!r}")
    labels = clips["label"].to_numpy(np.int64)
    bad_label = (labels < -1) | (labels >= len(meta["classes"]))
    bad_label |= (labels < 0) & (clips["split"].to_numpy() != "test")
    if bad_label.any():
        row = clips[bad_label].iloc[0]
        raise CorruptStoreError(
            f"{where}: clip {row.clip_id!r} ({row.split}) has label {int(row.label)}, outside "
            f"0..{len(meta['classes']) - 1}"
        )
    offsets = clips["offset"].to_numpy(np.int64)
    lengths = clips["length"].to_numpy(np.int64)
    bad = (offsets < 0) | (lengths < 0) | (offsets + lengths > rows)
    if bad.any():
        row = clips[bad].iloc[0]
        raise CorruptStoreError(
            f"{where}: clip {row.clip_id!r} rows {int(row.offset)}:{int(row.offset) + int(row.length)} "
            f"are out of range of {FEATURES_FILE}'s {rows} rows"
        )
    order = np.argsort(offsets, kind="stable")
    ends = (offsets + lengths)[order]
    overlap = np.nonzero(offsets[order][1:] < ends[:-1])[0]
    # Zero-length clips occupy no rows, so they cannot overlap anything.
    overlap = [i for i in overlap if lengths[order][i + 1] > 0 and lengths[order][i] > 0]
    if overlap:
        first, second = clips.iloc[order[overlap[0]]], clips.iloc[order[overlap[0] + 1]]
        raise CorruptStoreError(
            f"{where}: rows of clips {first.clip_id!r} and {second.clip_id!r} overlap"
        )


def check_finite(
    path: Path, array: np.ndarray, clips: pd.DataFrame, offsets: np.ndarray, lengths: np.ndarray
) -> None:
    """No NaN or Inf in a float features array; the first bad row is named with its clip."""
    if array.dtype.kind != "f":
        return
    chunk = max(1, (1 << 24) // max(1, array.shape[1]))
    for start in range(0, len(array), chunk):
        finite = np.isfinite(array[start : start + chunk]).all(axis=1)
        if not finite.all():
            bad_row = start + int(np.argmin(finite))
            owner = np.nonzero((offsets <= bad_row) & (bad_row < offsets + lengths))[0]
            where = f"clip {clips['clip_id'].iloc[owner[0]]!r}" if len(owner) else "an unused row"
            raise CorruptStoreError(
                f"{path / FEATURES_FILE}: NaN or Inf in row {bad_row} ({where})"
            )
