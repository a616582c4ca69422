"""The feature-store format: one modality, one variant, one directory.

A store is ``store.json`` (metadata and checksums), ``clips.parquet`` (one row per clip: id, split,
label, offset and length of its rows) and ``features.npy`` (one ``[total_vectors, dim]`` array,
memory-mapped on open). The package's jobs, one module each:

- ``format``: the on-disk contract (names, version, columns), sha256 and the ``.npy`` header;
- ``writer``: ``StoreWriter`` (atomic: a store is complete or absent), ``write_store``,
  ``check_out`` (what ``--force`` may replace);
- ``reader``: ``open_store`` and ``Store`` (memory-mapped reads, padded batches);
- ``checks``: what opening and ``validate_deep`` check, each failure one line;
- ``pairing``: ``pair`` / ``StorePair``, a visual and an audio store over the same clips.

Everything public is importable from ``feature_store.store`` (and the common names from
``feature_store``).
"""

from __future__ import annotations

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
from feature_store.store.pairing import StorePair, pair
from feature_store.store.reader import Padded, Store, open_store
from feature_store.store.writer import StoreWriter, check_out, write_store

__all__ = [
    "CLIPS_FILE",
    "FEATURES_FILE",
    "FORMAT",
    "META_FILE",
    "MODALITIES",
    "REQUIRED_COLUMNS",
    "SPLITS",
    "VERSION",
    "Padded",
    "Store",
    "StorePair",
    "StoreWriter",
    "check_out",
    "open_store",
    "pair",
    "sha256_file",
    "write_store",
]
