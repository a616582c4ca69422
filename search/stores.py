"""The feature stores a search draws from: every variant opened and checked, every visual × audio
pair checked to hold the same clips, the features read into memory once, in the driver (they
reach every trial through Ray's object store); the stores one trial reads (``trial_data``: a pair,
or one store for a single-modality trial); and, for planted stores, the oracle accuracy of each
pair and each store alone that the leaderboard and the report stand beside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import feature_store
from feature_store.store import Store, StorePair
from feature_store.store.protocol import dataset_of, fold_view, protocol_of, protocol_split
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
            stores[modality][variant] = split_for_search(store, config)
    check_pairs(stores)
    return {m: {v: s.load() for v, s in by_variant.items()} for m, by_variant in stores.items()}


def split_for_search(store: Store, config: SearchConfig) -> Store:
    """A fixed store as it is; a fold store as ``stores.fold``'s view (test = that fold, val
    carved from the others with the search's seed)."""
    try:
        return protocol_split(
            store,
            config.stores.fold,
            val_fraction=config.stores.val_fraction,
            seed=config.seed,
            option="stores.fold",
        )
    except feature_store.StoreError as exc:
        hint = ", e.g. --set stores.fold=1" if config.stores.fold is None else ""
        raise SearchError(f"{exc}{hint}") from None


def fold_stores(stores: Stores, fold: int, val_fraction: float, seed: int) -> Stores:
    """The loaded stores re-split for ``fold`` (the features shared, not copied)."""
    views = {
        modality: {
            variant: fold_view(store, fold, val_fraction=val_fraction, seed=seed)
            for variant, store in by_variant.items()
        }
        for modality, by_variant in stores.items()
    }
    check_pairs(views)
    return views


def check_pairs(stores: Stores) -> None:
    """Every visual × audio pair holds the same clips, splits and labels (PairError names the
    first clip that differs)."""
    for visual in stores["visual"].values():
        for audio in stores["audio"].values():
            feature_store.pair(visual, audio)


def data_record(stores: Stores) -> dict[str, Any]:
    """What the search's data is (logged as the parent run's ``data.json``): the dataset, its
    ordered classes, the protocol and, for a fold, what its view carved as validation."""
    store = next(iter(stores["visual"].values()))
    return {
        "dataset": dataset_of(store),
        "classes": store.classes,
        "protocol": protocol_of(store).as_dict(),
        "view": store.meta.get("view"),
        "train_counts": np.bincount(store.labels("train"), minlength=len(store.classes)).tolist(),
    }


def classes_of(stores: Stores) -> list[str]:
    """The class names the stores label with (paired stores share them)."""
    return next(iter(stores["visual"].values())).classes


def trial_data(
    stores: Stores, visual_feature: str | None, audio_feature: str | None
) -> StorePair | Store:
    """What one trial trains on: the pair of its two variants, or, for a single-modality trial
    (the other variant None), its one store."""
    chosen = {
        modality: stores[modality][variant]
        for modality, variant in (("visual", visual_feature), ("audio", audio_feature))
        if variant is not None
    }
    if len(chosen) == 2:
        return StorePair(chosen["visual"], chosen["audio"])
    if len(chosen) == 1:
        return next(iter(chosen.values()))
    raise SearchError("a trial names neither a visual nor an audio store variant")


def oracle_table(
    root: Path, visual: list[str], audio: list[str], fold: int | None = None
) -> dict[tuple[Any, Any], float]:
    """Planted stores know their exact best val accuracy per visual × audio pair, and alone:
    ``(visual, audio)``, ``(visual, None)`` and ``(None, audio)``. On a fold protocol, the
    reference of fold ``fold``'s val part: the oracle over the other folds' clips it is carved
    from."""
    table: dict[tuple[Any, Any], float] = {}

    def val(entry: dict[str, Any]) -> float | None:
        if fold is not None:
            value = (entry.get("folds") or {}).get(str(fold), {}).get("rest")
        else:
            value = entry.get("val")
        return None if value is None else float(value)

    for modality, variants in (("visual", visual), ("audio", audio)):
        for variant in variants:
            try:
                meta = feature_store.open_store(root / modality / variant).meta
            except feature_store.StoreError:
                continue
            oracle = (meta.get("planted") or {}).get("oracle", {})
            alone = val(oracle.get("alone", {}))
            if alone is not None:
                key = (variant, None) if modality == "visual" else (None, variant)
                table[key] = alone
            if modality == "visual":
                for other in audio:
                    paired = val(oracle.get("paired", {}).get(other, {}))
                    if paired is not None:
                        table[(variant, other)] = paired
    return table
