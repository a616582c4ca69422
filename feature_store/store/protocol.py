"""A store's evaluation protocol (``store.json``'s ``protocol``, from its manifest) and the
train/val/test view one fold of it gives.

A ``fixed`` store's splits are the dataset's. A ``folds``/``speakers`` store holds every clip as
``train`` with a ``fold`` column (1..k, the fold whose test it is in); ``fold_view(store, k)``
re-splits it: fold k's clips are ``test`` (labelled: the figures a paper reports), and from the
other folds' clips a stratified, seeded ``val`` part is carved (the search selects on it, never on
the test fold); the rest is ``train``. The carve depends only on the clip ids, labels, fold, seed
and fraction, never on a store's row order, so a visual and an audio store of one manifest get the
same view, and ``view_record`` says what was carved (recorded with the search)::

    >>> view = fold_view(open_store("data/mafw/visual/clip"), 1, val_fraction=0.1, seed=0)
    >>> view.clip_ids("test")   # fold 1's clips
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from avcore.datasets import ProtocolSpec
from avcore.errors import UserError
from feature_store.errors import StoreError
from feature_store.store.format import META_FILE
from feature_store.store.reader import Store


def protocol_of(store: Store) -> ProtocolSpec:
    """The store's protocol; ``fixed`` for stores written before protocols were recorded."""
    try:
        return ProtocolSpec.from_dict(store.meta.get("protocol"), where=str(store.path / META_FILE))
    except UserError as exc:
        raise StoreError(str(exc)) from None


def dataset_of(store: Store) -> str:
    return str(store.meta.get("dataset") or "afew")


def protocol_split(
    store: Store, fold: int | None, *, val_fraction: float, seed: int, option: str
) -> Store:
    """A fixed store as it is (``fold`` None); a fold store as ``fold``'s view. ``option`` is how
    the caller's user names the fold (``stores.fold``, ``--fold``) in the one-line refusals."""
    protocol = protocol_of(store)
    if protocol.has_folds and fold is None:
        raise StoreError(
            f"{store.path}: a {protocol.kind} protocol with {protocol.folds} folds: name the test "
            f"fold with {option} (1..{protocol.folds})"
        )
    if not protocol.has_folds:
        if fold is not None:
            raise StoreError(
                f"{store.path}: its protocol is fixed (the dataset's own splits): drop {option}"
            )
        return store
    return fold_view(store, fold, val_fraction=val_fraction, seed=seed)


def fold_view(store: Store, fold: int, *, val_fraction: float = 0.1, seed: int = 0) -> Store:
    """The store split for ``fold``: test = fold ``fold``, val = a stratified ``val_fraction``
    of the other folds' clips (seeded by ``seed`` and the fold), train = the rest."""
    protocol = protocol_of(store)
    if not protocol.has_folds:
        raise StoreError(
            f"{store.path}: its protocol is fixed (the dataset's own splits); it has no fold {fold}"
        )
    if not 1 <= fold <= protocol.folds:
        raise StoreError(
            f"{store.path}: fold {fold} is outside the {protocol.kind} protocol's folds "
            f"1..{protocol.folds}"
        )
    if not 0 < val_fraction < 1:
        raise StoreError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if "fold" not in store.clips.columns:
        raise StoreError(f"{store.path}: a {protocol.kind} store without a fold column")
    clips = store.clips
    folds = clips["fold"].to_numpy(np.int64)
    labels = clips["label"].to_numpy(np.int64)
    split = np.where(folds == fold, "test", "train").astype(object)
    for label in np.unique(labels[folds != fold]):
        # Ordered by clip id, then shuffled by a seed of (seed, fold, label): independent of the
        # store's row order, so every store of one manifest carves the same clips.
        rows = np.flatnonzero((folds != fold) & (labels == label))
        rows = rows[np.argsort(clips["clip_id"].to_numpy()[rows].astype(str), kind="stable")]
        rng = np.random.default_rng([seed, fold, int(label) + 1])
        take = int(round(len(rows) * val_fraction))
        if len(rows) >= 2:
            take = min(max(take, 1), len(rows) - 1)  # each class in val and in train
        else:
            take = 0
        split[rng.permutation(rows)[:take]] = "val"
    view = clips.copy()
    view["split"] = split.astype(str)
    meta = dict(store.meta)
    meta["view"] = view_record(view, fold, val_fraction, seed)
    return Store(store.path, meta, view, store.array, store.deep_validated)


def view_record(clips: Any, fold: int, val_fraction: float, seed: int) -> dict[str, Any]:
    """What a fold view carved: the fold, fraction, seed, clips per split and a fingerprint of
    the val clip ids (equal fingerprints: the same val part)."""
    val_ids = sorted(clips.loc[clips["split"] == "val", "clip_id"].astype(str))
    digest = hashlib.sha256("\n".join(val_ids).encode()).hexdigest()[:16]
    counts = clips["split"].value_counts()
    return {
        "fold": fold,
        "val_fraction": val_fraction,
        "seed": seed,
        "clips": {name: int(counts.get(name, 0)) for name in ("train", "val", "test")},
        "val_ids_sha256": digest,
    }
