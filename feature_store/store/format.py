"""The store's on-disk contract: format name and version, file names, the clip table's columns,
and the two low-level codecs every reader and writer shares (sha256 of a file, the ``.npy``
header that the writer fixes in size so it can stream rows before it knows how many there are).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from feature_store.errors import CorruptStoreError, StoreError

FORMAT = "avfusion-store"
VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
MODALITIES: tuple[str, ...] = ("visual", "audio")
FEATURES_FILE = "features.npy"
CLIPS_FILE = "clips.parquet"
META_FILE = "store.json"
REQUIRED_COLUMNS: tuple[str, ...] = ("clip_id", "split", "label", "offset", "length")
# A fixed-size .npy header lets the writer stream rows before it knows how many there are.
NPY_HEADER_BYTES = 128
_HASH_CHUNK = 1 << 22


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def npy_header(dtype: np.dtype, shape: tuple[int, int]) -> bytes:
    """A version-1.0 .npy header padded to exactly ``NPY_HEADER_BYTES`` bytes."""
    body = repr(
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )
    prefix = b"\x93NUMPY\x01\x00"
    room = NPY_HEADER_BYTES - len(prefix) - 2
    text = body.encode("latin1")
    if len(text) + 1 > room:
        raise StoreError(f"array shape {shape} does not fit the .npy header")
    text = text + b" " * (room - len(text) - 1) + b"\n"
    return prefix + len(text).to_bytes(2, "little") + text


def read_npy_header(path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
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
