"""A visual and an audio store over the same clips: ``pair`` checks that both hold the same clip
ids with the same splits and labels (and classes) and raises ``PairError`` naming the first clip
that differs; ``StorePair`` answers clip ids and labels in the visual store's order.
"""

from __future__ import annotations

import os

import numpy as np

from feature_store.errors import PairError
from feature_store.store.reader import Store, open_store


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
