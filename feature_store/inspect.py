"""Human-readable summaries of stores: clips per split and class, vectors per clip, oracle figures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from feature_store.errors import NotAStoreError
from feature_store.store.format import META_FILE, SPLITS
from feature_store.store.reader import Store, open_store
from feature_store.synthetic.oracle import describe


def find_stores(root: str | os.PathLike[str]) -> list[Path]:
    """``root`` itself if it is a store, else every store below it (sorted)."""
    root = Path(root)
    if (root / META_FILE).is_file():
        return [root]
    found = sorted(p.parent for p in root.rglob(META_FILE) if not p.parent.name.startswith("."))
    if not found:
        raise NotAStoreError(f"{root}: no feature store here or below")
    return found


def summarize(store: Store) -> str:
    meta = store.meta
    lines = [
        f"{store.path}  [{store.modality}] {store.name}",
        f"  backbone={meta.get('backbone')} pretrain={meta.get('pretrain')} "
        f"enhancement={meta.get('enhancement')} dim={store.dim} dtype={meta['dtype']}",
    ]
    classes = store.classes
    header = (
        "  split   clips  "
        + " ".join(f"{c[:7]:>7}" for c in classes)
        + "   vectors/clip (min/mean/max, empty)"
    )
    lines.append(header)
    lengths = store.lengths()
    for split in SPLITS:
        in_split = (store.clips["split"] == split).to_numpy()
        if not in_split.any():
            continue
        labels = store.clips["label"].to_numpy()[in_split]
        counts = np.bincount(labels[labels >= 0], minlength=len(classes))
        per_class = (
            " ".join(f"{n:>7}" for n in counts) if (labels >= 0).any() else "   (unlabelled)"
        )
        split_lengths = lengths[in_split]
        lines.append(
            f"  {split:<6} {in_split.sum():>6}  {per_class}   "
            f"{split_lengths.min()}/{split_lengths.mean():.1f}/{split_lengths.max()}, "
            f"{int((split_lengths == 0).sum())}"
        )
    planted = meta.get("planted")
    if planted:
        oracle = planted.get("oracle", {})
        alone = oracle.get("alone", {})
        if alone:
            lines.append(f"  oracle accuracy alone: {describe(alone)}")
        for partner, figures in sorted(oracle.get("paired", {}).items()):
            lines.append(f"  oracle accuracy with {partner}: {describe(figures)}")
    return "\n".join(lines)


def summarize_path(path: str | os.PathLike[str]) -> str:
    return "\n\n".join(summarize(open_store(p)) for p in find_stores(path))


def counts(store: Store) -> str:
    """``N clips, V vectors, dim D``: what ``build`` and ``validate`` print per store."""
    return f"{len(store)} clips, {len(store.array)} vectors, dim {store.dim}"
