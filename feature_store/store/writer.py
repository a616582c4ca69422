"""Writing a store: ``StoreWriter`` streams clips into a temporary sibling directory and renames it
into place on ``close()``, so a store is either complete or absent; ``write_store`` writes a whole
one from a clip table and an array; ``check_out`` says before any work whether ``path`` may be
written (``--force`` replaces only a store or an empty folder).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avcore import guards
from avcore.datasets import default_classes
from feature_store.errors import StoreError, StoreExistsError
from feature_store.store.format import (
    CLIPS_FILE,
    FEATURES_FILE,
    FORMAT,
    META_FILE,
    MODALITIES,
    NPY_HEADER_BYTES,
    REQUIRED_COLUMNS,
    SPLITS,
    VERSION,
    npy_header,
    sha256_file,
)
from feature_store.store.reader import Store, open_store


class StoreWriter:
    """Streams clips into a new store; ``close()`` makes it appear atomically.

    Use as a context manager: on an exception the temporary directory is removed and whatever was
    at ``path`` before is left untouched.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str,
        modality: str,
        dim: int,
        dtype: str = "float32",
        classes: Sequence[str] | None = None,
        backbone: str | None = None,
        pretrain: str | None = None,
        enhancement: str | None = None,
        recipe: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> None:
        self.path = Path(path)
        if modality not in MODALITIES:
            raise StoreError(f"modality must be one of {MODALITIES}, got {modality!r}")
        if dim <= 0:
            raise StoreError(f"dim must be positive, got {dim}")
        classes = default_classes() if classes is None else classes
        if len(classes) != len(set(classes)):
            raise StoreError(f"classes must be distinct, got {list(classes)}")
        check_out(self.path, force=force)
        self.force = force
        self.dtype = np.dtype(dtype)
        self.dim = int(dim)
        self.classes = tuple(classes)
        self.meta: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "name": name,
            "modality": modality,
            "dim": self.dim,
            "dtype": self.dtype.name,
            "classes": list(self.classes),
            "backbone": backbone,
            "pretrain": pretrain,
            "enhancement": enhancement,
            "recipe": dict(recipe or {}),
        }
        if extra:
            self.meta.update(extra)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        guards.remove_stale_staging(self.path)  # what SIGKILLed writers left behind
        self._tmp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._tmp.mkdir()
        # Held open across add() calls and closed by close()/abort().
        self._features = open(self._tmp / FEATURES_FILE, "wb")  # noqa: SIM115
        self._features.write(b"\0" * NPY_HEADER_BYTES)
        self._rows: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._total = 0
        self._closed = False

    def add(
        self, clip_id: str, split: str, label: int, vectors: np.ndarray, **provenance: Any
    ) -> None:
        """Append one clip: its ``[n, dim]`` vectors (n may be 0) and optional provenance columns."""
        clip_id = str(clip_id)
        reason = guards.unsafe_reason(clip_id)
        if reason:
            raise StoreError(f"clip id {clip_id!r} {reason}; clip ids are names, not paths")
        if clip_id in self._seen:
            raise StoreError(f"duplicate clip id {clip_id!r}")
        if split not in SPLITS:
            raise StoreError(f"clip {clip_id!r}: split must be one of {SPLITS}, got {split!r}")
        label = int(label)
        if not -1 <= label < len(self.classes):
            raise StoreError(
                f"clip {clip_id!r}: label {label} is outside the {len(self.classes)} classes"
            )
        if split != "test" and label < 0:
            raise StoreError(f"clip {clip_id!r}: a {split} clip needs a label")
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise StoreError(
                f"clip {clip_id!r}: vectors must be [n, {self.dim}], got {list(vectors.shape)}"
            )
        self._features.write(np.ascontiguousarray(vectors, dtype=self.dtype).tobytes())
        self._rows.append(
            {
                "clip_id": clip_id,
                "split": split,
                "label": label,
                "offset": self._total,
                "length": len(vectors),
                **provenance,
            }
        )
        self._seen.add(clip_id)
        self._total += len(vectors)

    def close(self) -> Store:
        """Write clips, header and checksums, then rename the store into place."""
        if self._closed:
            raise StoreError(f"{self.path}: writer already closed")
        self._features.seek(0)
        self._features.write(npy_header(self.dtype, (self._total, self.dim)))
        self._features.close()
        clips = pd.DataFrame(self._rows, columns=None if self._rows else list(REQUIRED_COLUMNS))
        clips = clips.astype(
            {"clip_id": str, "split": str, "label": "int8", "offset": "int64", "length": "int32"}
        )
        clips.to_parquet(self._tmp / CLIPS_FILE, index=False)
        self.meta["num_clips"] = len(clips)
        self.meta["num_vectors"] = self._total
        self.meta["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.meta["files"] = {
            FEATURES_FILE: sha256_file(self._tmp / FEATURES_FILE),
            CLIPS_FILE: sha256_file(self._tmp / CLIPS_FILE),
        }
        (self._tmp / META_FILE).write_text(json.dumps(self.meta, indent=2, default=_json_default))
        self._closed = True
        _replace_dir(self._tmp, self.path, force=self.force)
        return open_store(self.path)

    def abort(self) -> None:
        if not self._features.closed:
            self._features.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._closed = True

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in store.json")


def check_out(path: str | os.PathLike[str], *, force: bool) -> None:
    """Before any work: an existing ``path`` needs ``force``, and ``force`` replaces only a store
    (a folder with its ``store.json``) or an empty folder; the place must be writable."""
    path = Path(path)
    if path.exists() and not force:
        what = "a store" if (path / META_FILE).exists() else "files"
        raise StoreExistsError(f"{path}: already holds {what}; refusing to overwrite (use --force)")
    try:
        guards.prepare_out(path, force=force, marker=META_FILE)
    except guards.GuardError as exc:
        raise (StoreExistsError if path.exists() else StoreError)(str(exc)) from None


def _replace_dir(tmp: Path, path: Path, *, force: bool) -> None:
    """Rename ``tmp`` to ``path``; with ``force`` an existing store is swapped out, then removed."""
    try:
        check_out(path, force=force)
    except StoreError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    guards.swap_in(tmp, path)


def write_store(
    path: str | os.PathLike[str],
    clips: pd.DataFrame,
    features: np.ndarray,
    **writer_args: Any,
) -> Store:
    """Write a whole store at once: ``clips`` holds clip_id, split, label, length (+ provenance) in
    the row order of ``features``."""
    features = np.asarray(features)
    with StoreWriter(
        path, dim=features.shape[1], dtype=features.dtype.name, **writer_args
    ) as writer:
        start = 0
        extra_columns = [c for c in clips.columns if c not in REQUIRED_COLUMNS]
        for row in clips.itertuples(index=False):
            length = int(row.length)
            writer.add(
                row.clip_id,
                row.split,
                int(row.label),
                features[start : start + length],
                **{c: getattr(row, c) for c in extra_columns},
            )
            start += length
        if start != len(features):
            raise StoreError(f"clip lengths sum to {start} but features hold {len(features)} rows")
        return writer.close()
