"""The feature-store format: one modality, one variant, one directory.

A store is ``store.json`` (metadata and checksums), ``clips.parquet`` (one row per clip: id, split,
label, offset and length of its rows) and ``features.npy`` (one ``[total_vectors, dim]`` array,
memory-mapped on open). ``StoreWriter`` writes into a temporary sibling directory and renames it
into place, so a store is either complete or absent. ``open_store`` checks the format version,
shapes, offsets and the clip table's sha256 (cheap); ``Store.validate_deep`` also checks the large
features file's sha256 and NaN/Inf (``deep_validated`` records that it passed).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avcore import guards
from avcore.afew import CLASSES
from feature_store.errors import (
    CorruptStoreError,
    NotAStoreError,
    PairError,
    StoreError,
    StoreExistsError,
)

FORMAT = "avfusion-store"
VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
MODALITIES: tuple[str, ...] = ("visual", "audio")
FEATURES_FILE = "features.npy"
CLIPS_FILE = "clips.parquet"
META_FILE = "store.json"
REQUIRED_COLUMNS: tuple[str, ...] = ("clip_id", "split", "label", "offset", "length")
# A fixed-size .npy header lets the writer stream rows before it knows how many there are.
_NPY_HEADER_BYTES = 128
_HASH_CHUNK = 1 << 22


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _npy_header(dtype: np.dtype, shape: tuple[int, int]) -> bytes:
    """A version-1.0 .npy header padded to exactly ``_NPY_HEADER_BYTES`` bytes."""
    body = repr(
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )
    prefix = b"\x93NUMPY\x01\x00"
    room = _NPY_HEADER_BYTES - len(prefix) - 2
    text = body.encode("latin1")
    if len(text) + 1 > room:
        raise StoreError(f"array shape {shape} does not fit the .npy header")
    text = text + b" " * (room - len(text) - 1) + b"\n"
    return prefix + len(text).to_bytes(2, "little") + text


def _read_npy_header(path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """dtype, shape and data offset of a .npy file, without reading its data."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            data_offset = handle.tell()
    except (ValueError, OSError, SyntaxError) as exc:
        raise CorruptStoreError(f"{path}: not a readable .npy file ({exc})") from None
    if fortran:
        raise CorruptStoreError(f"{path}: Fortran-ordered arrays are not supported")
    return dtype, tuple(shape), data_offset


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
        classes: Sequence[str] = CLASSES,
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
        self._features.write(b"\0" * _NPY_HEADER_BYTES)
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
        self._features.write(_npy_header(self.dtype, (self._total, self.dim)))
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
        _check_split(split)
        return self.clips.loc[self.clips["split"] == split, "clip_id"].tolist()

    def labels(self, split: str | None = None) -> np.ndarray:
        """Label indices (int64, -1 where unknown) in the order of ``clip_ids(split)``."""
        if split is None:
            return self.clips["label"].to_numpy(np.int64)
        _check_split(split)
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
        if isinstance(array, np.memmap):
            return (open_store, (str(self.path),))
        return (Store, (self.path, self.meta, self.clips, array, self.deep_validated))

    # -- checks -------------------------------------------------------------------------------
    def validate_deep(self) -> None:
        """Checksums of every file against ``store.json`` and a scan for NaN/Inf."""
        for name in (FEATURES_FILE, CLIPS_FILE):
            _check_hash(self.path, self.meta, name, required=True)
        self._check_finite()
        self.deep_validated = True

    def _check_finite(self) -> None:
        if self.array.dtype.kind != "f":
            return
        chunk = max(1, (1 << 24) // max(1, self.dim))
        for start in range(0, len(self.array), chunk):
            finite = np.isfinite(self.array[start : start + chunk]).all(axis=1)
            if not finite.all():
                bad_row = start + int(np.argmin(finite))
                owner = np.nonzero(
                    (self._offsets <= bad_row) & (bad_row < self._offsets + self._lengths)
                )[0]
                where = (
                    f"clip {self.clips['clip_id'].iloc[owner[0]]!r}"
                    if len(owner)
                    else "an unused row"
                )
                raise CorruptStoreError(
                    f"{self.path / FEATURES_FILE}: NaN or Inf in row {bad_row} ({where})"
                )


def _check_hash(path: Path, meta: dict[str, Any], name: str, *, required: bool) -> None:
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


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise StoreError(f"split must be one of {SPLITS}, got {split!r}")


def _read_meta(path: Path) -> dict[str, Any]:
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


def _check_clips(path: Path, clips: pd.DataFrame, meta: dict[str, Any], rows: int) -> None:
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


def open_store(path: str | os.PathLike[str]) -> Store:
    """Open a store: metadata, clips (against their recorded sha256) and a memory map of the
    features, all checked for consistency."""
    path = Path(path)
    meta = _read_meta(path)
    features_path = path / FEATURES_FILE
    clips_path = path / CLIPS_FILE
    for required in (features_path, clips_path):
        if not required.is_file():
            raise CorruptStoreError(f"{required}: missing")
    dtype, shape, data_offset = _read_npy_header(features_path)
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
    _check_hash(path, meta, CLIPS_FILE, required=False)
    try:
        clips = pd.read_parquet(clips_path)
    except Exception as exc:  # pyarrow raises many kinds for a damaged file
        raise CorruptStoreError(f"{clips_path}: not a readable parquet file ({exc})") from None
    _check_clips(path, clips, meta, shape[0])
    if shape[0] == 0:
        array = np.zeros(shape, dtype=dtype)
    else:
        array = np.memmap(features_path, dtype=dtype, mode="r", offset=data_offset, shape=shape)
    return Store(path, meta, clips, array)


class StorePair:
    """A visual and an audio store over the same clips, splits and labels (in the visual order)."""

    def __init__(self, visual: Store, audio: Store) -> None:
        self.visual = visual
        self.audio = audio

    @property
    def classes(self) -> list[str]:
        return self.visual.classes

    def clip_ids(self, split: str | None = None) -> list[str]:
        return self.visual.clip_ids(split)

    def labels(self, split: str | None = None) -> np.ndarray:
        return self.visual.labels(split)

    def load(self) -> StorePair:
        return StorePair(self.visual.load(), self.audio.load())

    def __repr__(self) -> str:
        return f"StorePair(visual={self.visual!r}, audio={self.audio!r})"


def pair(
    visual: Store | str | os.PathLike[str], audio: Store | str | os.PathLike[str]
) -> StorePair:
    """Pair a visual and an audio store; raises ``PairError`` naming the first clip that differs."""
    visual = visual if isinstance(visual, Store) else open_store(visual)
    audio = audio if isinstance(audio, Store) else open_store(audio)
    if visual.modality != "visual":
        raise PairError(f"{visual.path}: expected a visual store, got {visual.modality}")
    if audio.modality != "audio":
        raise PairError(f"{audio.path}: expected an audio store, got {audio.modality}")
    if visual.classes != audio.classes:
        raise PairError(
            f"{visual.path} and {audio.path} have different classes: {visual.classes} vs {audio.classes}"
        )
    missing = ~audio.clips["clip_id"].isin(visual.clips["clip_id"])
    if missing.any():
        clip_id = audio.clips["clip_id"][missing].iloc[0]
        raise PairError(f"clip {clip_id!r} is in {audio.path} but not in {visual.path}")
    columns = ["clip_id", "split", "label"]
    merged = visual.clips[columns].merge(
        audio.clips[columns], on="clip_id", how="left", suffixes=("", "_audio"), indicator=True
    )
    differs = (
        (merged["_merge"] != "both")
        | (merged["split"] != merged["split_audio"])
        | (merged["label"] != merged["label_audio"])
    )
    if differs.any():
        row = merged[differs].iloc[0]
        if row["_merge"] != "both":
            raise PairError(f"clip {row.clip_id!r} is in {visual.path} but not in {audio.path}")
        raise PairError(
            f"clip {row.clip_id!r}: split/label {row.split}/{int(row.label)} in {visual.path} but "
            f"{row.split_audio}/{int(row.label_audio)} in {audio.path}"
        )
    return StorePair(visual, audio)
