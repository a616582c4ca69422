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

from avcore.lazy import lazy_exports
from feature_store.errors import (
    CorruptStoreError,
    NotAStoreError,
    PairError,
    StoreError,
    StoreExistsError,
)

__getattr__, __dir__, _lazy = lazy_exports(
    __name__,
    {
        "feature_store.store": [
            "SPLITS",
            "Padded",
            "Store",
            "StorePair",
            "StoreWriter",
            "open_store",
            "pair",
            "write_store",
        ]
    },
)
__all__ = [
    "CorruptStoreError",
    "NotAStoreError",
    "PairError",
    "StoreError",
    "StoreExistsError",
    *_lazy,
]
