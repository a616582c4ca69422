"""Feature stores: precomputed per-clip feature vectors, one modality and one variant per store.

    >>> import feature_store
    >>> store = feature_store.open_store("data/demo/visual/basic")
    >>> store.features(store.clip_ids("val")[0]).shape     # (frames, dim), a zero-copy view
    >>> pair = feature_store.pair("data/demo/visual/basic", "data/demo/audio/spectrogram")

``python -m feature_store --help`` lists the commands (synth, inspect, validate, ...).

The store API (``feature_store.store``: numpy, pandas) is loaded on first use (PEP 562), so
``import feature_store.errors`` and ``--help`` stay light; the errors are imported at once.
"""

from __future__ import annotations

from typing import Any

from feature_store.errors import (
    CorruptStoreError,
    NotAStoreError,
    PairError,
    StoreError,
    StoreExistsError,
)

_STORE_NAMES = (
    "CLASSES",
    "SPLITS",
    "Padded",
    "Store",
    "StorePair",
    "StoreWriter",
    "open_store",
    "pair",
    "write_store",
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


def __getattr__(name: str) -> Any:
    if name in _STORE_NAMES:
        from feature_store import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
