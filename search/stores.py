"""The feature stores a search draws from: every variant opened and checked, every visual × audio
pair checked to hold the same clips, the features read into memory once, in the driver (they
reach every trial through Ray's object store); and, for planted stores, the oracle accuracy of
each pair that the leaderboard stands beside.
"""

from __future__ import annotations

from pathlib import Path

import feature_store
from feature_store.store import Store
from search.config import SearchConfig
from search.errors import SearchError

Stores = dict[str, dict[str, Store]]  # modality -> variant -> store (features loaded)


def load_stores(config: SearchConfig) -> Stores:
    """Every variant opened, every visual × audio pair checked, features read into memory."""
    stores: Stores = {"visual": {}, "audio": {}}
    for modality in stores:
        for variant in getattr(config.stores, f"{modality}_feature"):
            store = feature_store.open_store(config.stores.path(modality, variant))
            if config.stores.validate_deep:
                store.validate_deep()
            if store.modality != modality:
                raise SearchError(
                    f"{store.path}: is a {store.modality} store, listed as {modality}"
                )
            stores[modality][variant] = store
    for visual in stores["visual"].values():
        for audio in stores["audio"].values():
            feature_store.pair(visual, audio)  # PairError names the first clip that differs
    return {m: {v: s.load() for v, s in by_variant.items()} for m, by_variant in stores.items()}


def classes_of(stores: Stores) -> list[str]:
    """The class names the stores label with (paired stores share them)."""
    return next(iter(stores["visual"].values())).classes


def oracle_table(root: Path, visual: list[str], audio: list[str]) -> dict[tuple[str, str], float]:
    """Planted stores know their exact best val accuracy per visual × audio pair."""
    table = {}
    for variant in visual:
        try:
            meta = feature_store.open_store(root / "visual" / variant).meta
        except feature_store.StoreError:
            continue
        paired = (meta.get("planted") or {}).get("oracle", {}).get("paired", {})
        for other in audio:
            if other in paired:
                table[(variant, other)] = float(paired[other]["val"])
    return table
