"""Feature stores: precomputed per-clip feature vectors, one modality and one variant per store.

    >>> import feature_store
    >>> store = feature_store.open_store("data/demo/visual/basic")
    >>> store.features(store.clip_ids("val")[0]).shape     # (frames, dim), a zero-copy view
    >>> pair = feature_store.pair("data/demo/visual/basic", "data/demo/audio/spectrogram")

``python -m feature_store --help`` lists the commands (synth, inspect, validate, ...).
"""

from __future__ import annotations

from feature_store.errors import (
    CorruptStoreError,
    NotAStoreError,
    PairError,
    StoreError,
    StoreExistsError,
)
from feature_store.store import (
    CLASSES,
    SPLITS,
    Padded,
    Store,
    StorePair,
    StoreWriter,
    open_store,
    pair,
    write_store,
)

__all__ = [
    "CLASSES",
    "SPLITS",
    "CorruptStoreError",
    "NotAStoreError",
    "Padded",
    "PairError",
    "Store",
    "StoreError",
    "StoreExistsError",
    "StorePair",
    "StoreWriter",
    "open_store",
    "pair",
    "write_store",
]
