"""The planted dataset's shape, from its ``avcore.datasets`` profile (``Generator.dataset``): its
classes, the clips' splits and labels, and for fold protocols each clip's fold and speaker.

- ``fixed``: the dataset's train/val/test splits, each of the profile's size × ``scale`` (at
  least K clips) with the profile's class proportions; test labels are written where the dataset
  labels its test split (not AFEW's: EmotiW withholds them).
- ``folds`` / ``speakers``: every clip ``train``, the profile's clip count × ``scale`` with its
  class proportions (at least ``MIN_PER_FOLD`` clips of each class per fold), and a ``fold``
  (1..k) stratified by class, so each fold has the class frequencies. ``speakers`` adds synthetic
  speaker ids, each speaker in exactly one fold (they are provenance only: the planted model has
  no speaker effect).
"""

from __future__ import annotations

import numpy as np

from avcore.datasets import DatasetProfile, ProtocolSpec, profile
from feature_store.errors import StoreError
from feature_store.store.format import SPLITS
from feature_store.synthetic.params import Generator

MIN_PER_FOLD = 2  # clips of each class in each fold, however small the scale
# Speakers of the speaker-fold datasets (the actors avcore.datasets' profiles cite), unscaled;
# a profile's sizes["speakers"] comes first, and SPEAKERS_PER_FOLD per fold where neither says.
SPEAKERS = {"ravdess": 24, "crema-d": 91}
SPEAKERS_PER_FOLD = 5
UNLABELLED_TEST = frozenset({"afew"})  # datasets whose test labels are withheld


def dataset_profile(generator: Generator) -> DatasetProfile:
    return profile(generator.dataset)


def num_classes(generator: Generator) -> int:
    return len(dataset_profile(generator).classes)


def protocol(generator: Generator) -> ProtocolSpec:
    """The planted stores' protocol: the profile's; speaker folds record the generator's seed,
    which drew their assignment."""
    spec = dataset_profile(generator).protocol
    if spec.kind == "speakers":
        return ProtocolSpec(spec.kind, spec.folds, generator.seed)
    return spec


def labels_test(generator: Generator) -> bool:
    """Whether the stores carry test labels (the dataset labels its test split)."""
    return dataset_profile(generator).name not in UNLABELLED_TEST


def _apportion(proportions: np.ndarray, size: int) -> np.ndarray:
    """``size`` clips over the classes by ``proportions``: floors, then the largest remainders."""
    counts = np.floor(proportions * size).astype(int)
    remainder = np.argsort(-(proportions * size - counts), kind="stable")[: size - counts.sum()]
    counts[remainder] += 1
    return counts


def _size(dataset: DatasetProfile, key: str) -> int:
    sizes = dataset.sizes
    if key == "all" and key not in sizes:
        return sum(dataset.class_counts)
    if key == "val" and key not in sizes and "dev" in sizes:
        return sizes["dev"]
    if key not in sizes:
        raise StoreError(f"dataset {dataset.name!r}: its profile gives no {key} size to plant")
    return sizes[key]


def split_labels(generator: Generator, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Splits and labels: the profile's split sizes (or clip count) × ``scale``, its class
    proportions; shuffled within each split."""
    dataset = dataset_profile(generator)
    k = len(dataset.classes)
    proportions = np.asarray(dataset.class_counts, float) / sum(dataset.class_counts)
    if dataset.protocol.has_folds:
        size = int(round(_size(dataset, "all") * generator.scale))
        counts = np.maximum(_apportion(proportions, size), dataset.protocol.folds * MIN_PER_FOLD)
        labels = np.repeat(np.arange(k), counts)
        rng.shuffle(labels)
        return np.full(len(labels), "train"), labels
    splits, labels_ = [], []
    for split in SPLITS:
        size = max(k, int(round(_size(dataset, split) * generator.scale)))
        split_labels_ = np.repeat(np.arange(k), _apportion(proportions, size))
        rng.shuffle(split_labels_)
        splits += [split] * size
        labels_.append(split_labels_)
    return np.asarray(splits), np.concatenate(labels_)


def clip_ids(generator: Generator, splits: np.ndarray) -> list[str]:
    """``train-00000``, ``val-00000``, ... (fixed) or ``clip-00000``, ... (fold protocols)."""
    if dataset_profile(generator).protocol.has_folds:
        return [f"clip-{index:05d}" for index in range(len(splits))]
    counters = {split: 0 for split in SPLITS}
    ids = []
    for split in splits:
        ids.append(f"{split}-{counters[split]:05d}")
        counters[split] += 1
    return ids


def assign_folds(generator: Generator, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Each clip's fold (1..k; 0 under a fixed protocol), stratified by class, and its speaker
    (``speakers`` protocols, else None), each speaker in one fold. A stream of its own, so the
    rest of the draws do not depend on it."""
    spec = dataset_profile(generator).protocol
    folds = np.zeros(len(labels), dtype=np.int64)
    if not spec.has_folds:
        return folds, None
    rng = np.random.default_rng(np.random.SeedSequence([generator.seed, 4]))
    start = 0
    for label in range(num_classes(generator)):
        rows = rng.permutation(np.flatnonzero(labels == label))
        # Round robin from where the previous class stopped: every class in every fold, and the
        # folds' sizes differ by at most one clip.
        folds[rows] = (start + np.arange(len(rows))) % spec.folds + 1
        start += len(rows)
    if spec.kind != "speakers":
        return folds, None
    dataset = dataset_profile(generator)
    total = dataset.sizes.get(
        "speakers", SPEAKERS.get(dataset.name, SPEAKERS_PER_FOLD * spec.folds)
    )
    per_fold = [total // spec.folds + (fold < total % spec.folds) for fold in range(spec.folds)]
    per_fold = [max(1, min(n, int((folds == f + 1).sum()))) for f, n in enumerate(per_fold)]
    names = rng.permutation(sum(per_fold)) + 1
    speakers = np.empty(len(labels), dtype=object)
    first = 0
    for fold, count in enumerate(per_fold, start=1):
        rows = rng.permutation(np.flatnonzero(folds == fold))
        speakers[rows] = [f"spk{names[first + i % count]:03d}" for i in range(len(rows))]
        first += count
    return folds, speakers.astype(str)
