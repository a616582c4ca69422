"""Reading a store: ``open_store`` checks the format version, shapes, offsets and the clip table's
sha256 (cheap) and memory-maps the features; a ``Store`` answers clip ids, labels and lengths per
split and hands out a clip's vectors (a view, no copy) or a padded batch. ``Store.validate_deep``
also checks the large features file's sha256 and NaN/Inf (``deep_validated`` records that it
passed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feature_store.errors import CorruptStoreError, StoreError
from feature_store.store.checks import check_clips, check_finite, check_hash, check_split, read_meta
from feature_store.store.format import CLIPS_FILE, FEATURES_FILE, META_FILE, read_npy_header


@dataclass(frozen=True)
class Padded:
    """A batch of clips as one padded array: ``x [B, T, D]`` and ``mask [B, T]`` (True = real)."""

    x: np.ndarray
    mask: np.ndarray
    lengths: np.ndarray


class Store:
    """A feature store opened for reading; ``features`` is memory-mapped unless loaded."""

    def __init__(
        self,
        path: Path,
        meta: dict[str, Any],
        clips: pd.DataFrame,
        array: np.ndarray,
        deep_validated: bool = False,
    ):
        self.path = path
        # True once validate_deep() passed: the features' sha256 and finiteness were checked.
        self.deep_validated = deep_validated
        self.meta = meta
        self.clips = clips
        self.array = array
        self._row = {cid: i for i, cid in enumerate(clips["clip_id"].tolist())}
        self._offsets = clips["offset"].to_numpy(np.int64)
        self._lengths = clips["length"].to_numpy(np.int64)

    # -- metadata -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.path.name))

    @property
    def modality(self) -> str:
        return str(self.meta["modality"])

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def checksum(self) -> str:
        """One short fingerprint of the store's content (its features' sha256, 16 hex digits)."""
        return str(self.meta["files"][FEATURES_FILE])[:16]

    def __len__(self) -> int:
        return len(self.clips)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, {self.modality}, {len(self)} clips, dim {self.dim})"

    # -- clips, splits, labels ----------------------------------------------------------------
    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self._row

    def clip_ids(self, split: str | None = None) -> list[str]:
        if split is None:
            return self.clips["clip_id"].tolist()
        check_split(split)
        return self.clips.loc[self.clips["split"] == split, "clip_id"].tolist()

    def labels(self, split: str | None = None) -> np.ndarray:
        """Label indices (int64, -1 where unknown) in the order of ``clip_ids(split)``."""
        if split is None:
            return self.clips["label"].to_numpy(np.int64)
        check_split(split)
        return self.clips.loc[self.clips["split"] == split, "label"].to_numpy(np.int64)

    def rows(self, clip_ids: Iterable[str]) -> np.ndarray:
        try:
            return np.fromiter((self._row[c] for c in clip_ids), dtype=np.int64)
        except KeyError as exc:
            raise StoreError(f"{self.path}: no clip {exc.args[0]!r}") from None

    def lengths(self, clip_ids: Iterable[str] | None = None) -> np.ndarray:
        if clip_ids is None:
            return self._lengths.copy()
        return self._lengths[self.rows(clip_ids)]

    # -- features -----------------------------------------------------------------------------
    def features(self, clip_id: str) -> np.ndarray:
        """The clip's ``[length, dim]`` vectors: a view into the memory map, no copy."""
        try:
            row = self._row[clip_id]
        except KeyError:
            raise StoreError(f"{self.path}: no clip {clip_id!r}") from None
        start = self._offsets[row]
        return self.array[start : start + self._lengths[row]]

    def padded(
        self, clip_ids: Sequence[str], *, max_len: int | None = None, dtype: str = "float32"
    ) -> Padded:
        """Gather clips into one zero-padded ``[B, T, D]`` array and its mask, in one pass.

        ``max_len`` truncates longer clips to their first ``max_len`` vectors.
        """
        rows = self.rows(clip_ids)
        lengths = self._lengths[rows]
        if max_len is not None:
            lengths = np.minimum(lengths, max_len)
        width = int(lengths.max()) if len(lengths) else 0
        mask = np.arange(width)[None, :] < lengths[:, None]
        batch, step = np.nonzero(mask)
        source = self._offsets[rows][batch] + step
        x = np.zeros((len(rows), width, self.dim), dtype=dtype)
        x[batch, step] = self.array[source]
        return Padded(x=x, mask=mask, lengths=lengths)

    def load(self) -> Store:
        """The same store with its features read into memory (picklable, e.g. for Ray's object
        store, which shares the array zero-copy between processes)."""
        array = np.ascontiguousarray(self.array)
        return Store(self.path, self.meta, self.clips, array, self.deep_validated)

    def __reduce__(self):
        array = self.array
        if isinstance(array, np.memmap) and "view" not in self.meta:
            return (open_store, (str(self.path),))
        if isinstance(array, np.memmap):  # a fold view: the same map, its own clip table
            return (_reopen_view, (str(self.path), self.meta, self.clips))
        return (Store, (self.path, self.meta, self.clips, array, self.deep_validated))

    # -- checks -------------------------------------------------------------------------------
    def validate_deep(self) -> None:
        """Checksums of every file against ``store.json`` and a scan for NaN/Inf."""
        for name in (FEATURES_FILE, CLIPS_FILE):
            check_hash(self.path, self.meta, name, required=True)
        check_finite(self.path, self.array, self.clips, self._offsets, self._lengths)
        self.deep_validated = True


def _reopen_view(path: str, meta: dict[str, Any], clips: pd.DataFrame) -> Store:
    store = open_store(path)
    return Store(store.path, meta, clips, store.array, store.deep_validated)


def open_store(path: str | os.PathLike[str]) -> Store:
    """Open a store: metadata, clips (against their recorded sha256) and a memory map of the
    features, all checked for consistency."""
    path = Path(path)
    meta = read_meta(path)
    features_path = path / FEATURES_FILE
    clips_path = path / CLIPS_FILE
    for required in (features_path, clips_path):
        if not required.is_file():
            raise CorruptStoreError(f"{required}: missing")
    dtype, shape, data_offset = read_npy_header(features_path)
    if len(shape) != 2 or shape[1] != meta["dim"]:
        raise CorruptStoreError(
            f"{features_path}: shape {list(shape)} does not match dim {meta['dim']} in {META_FILE}"
        )
    if dtype.name != meta["dtype"]:
        raise CorruptStoreError(
            f"{features_path}: dtype {dtype.name} but {META_FILE} says {meta['dtype']}"
        )
    expected_size = data_offset + shape[0] * shape[1] * dtype.itemsize
    actual_size = features_path.stat().st_size
    if actual_size != expected_size:
        raise CorruptStoreError(
            f"{features_path}: {actual_size} bytes but its header promises {expected_size} "
            "(truncated or altered)"
        )
    # The clip table is small: its recorded hash is checked on every open (an edited label or
    # split must not train silently); the large array's waits for validate_deep (`--deep`).
    check_hash(path, meta, CLIPS_FILE, required=False)
    try:
        clips = pd.read_parquet(clips_path)
    except Exception as exc:  # pyarrow raises many kinds for a damaged file
        raise CorruptStoreError(f"{clips_path}: not a readable parquet file ({exc})") from None
    check_clips(path, clips, meta, shape[0])
    if shape[0] == 0:
        array = np.zeros(shape, dtype=dtype)
    else:
        array = np.memmap(features_path, dtype=dtype, mode="r", offset=data_offset, shape=shape)
    return Store(path, meta, clips, array)
