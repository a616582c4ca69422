"""The images a fine-tuning run reads: every face crop of an image set cut once into a uint8
cache (``crops.npy``, memory-mapped by each Ray worker), and the per-epoch plan every worker
derives alike from the seed: the sample order (shuffled, or class-balanced draws) and each
sample's augmentation (flip, small rotation and scale, as the F-Mean copies vary).

Faces are cut the way stores cut them (``faces.FaceCropper`` for whole photos; the given box
extended by ``faces.extend`` for AffectNet; aligned sets as they are), at the recipe's
``faces.size``; the network input is then resized like ``TorchBackbone`` resizes a store crop.
The cache is keyed by the image list (path, size, mtime, label, split) and the face settings,
so a resumed run or a second run on the same set reuses it; on a multi-node cluster put it
on shared storage (``--cache``).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from avcore.progress import Progress
from feature_store.image_sets import ImageSet, ImageSetError
from feature_store.visual.specs import FaceSpec

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class CropCache:
    """Where the crops of one image set lie, with their labels and splits (in set order)."""

    crops: Path  # uint8 [N, S, S, 3]
    labels: np.ndarray  # int64 [N]
    splits: np.ndarray  # int8 [N], SPLIT_CODES

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == SPLIT_CODES[split])


def read_image(path: str) -> np.ndarray:
    """An image file as uint8 RGB ``[H, W, 3]``; a missing or unreadable file names itself."""
    if not os.path.isfile(path):
        raise ImageSetError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise ImageSetError(f"{path}: not a readable image ({reason})") from None


_CROPPER = None  # this process's faces.FaceCropper


def cut_face(item: tuple[str, str, tuple[float, ...], FaceSpec]) -> np.ndarray:
    """One face crop ``[size, size, 3]`` (runs in pool processes; the detector is made once)."""
    # Imported here: dlib is needed to cut faces, not to train on cut ones (a GPU image may lack it).
    from feature_store.visual.faces import FaceCropper, crop_affine, extended_box, warp, whole_frame

    global _CROPPER
    path, faces, box, spec = item
    frame = read_image(path)
    if faces == "aligned":
        return whole_frame(frame, spec.size)
    if faces == "box":
        centre_x, centre_y, width, height = extended_box(box, spec.extend)
        return warp(
            frame, crop_affine(centre_x, centre_y, width, height, 0.0, spec.size), spec.size
        )
    if _CROPPER is None or _CROPPER.spec != spec:
        _CROPPER = FaceCropper(spec)
    return _CROPPER(frame)[0]


def cache_key(found: ImageSet, spec: FaceSpec) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([found.faces, spec.model_dump(mode="json")]).encode())
    for row in found.rows.itertuples(index=False):
        try:
            stat = os.stat(row.path)
            seen = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            seen = (-1, -1)
        digest.update(f"{row.path}\0{row.split}\0{row.label}\0{seen}\n".encode())
    return digest.hexdigest()[:16]


def prepare_crops(
    found: ImageSet, spec: FaceSpec, cache_dir: Path, *, workers: int = 1, progress: bool = True
) -> CropCache:
    """Cut every face of ``found`` once into ``cache_dir/KEY/crops.npy`` (reused when present)."""
    folder = cache_dir / cache_key(found, spec)
    labels = found.rows["label"].to_numpy(np.int64)
    splits = found.rows["split"].map(SPLIT_CODES).to_numpy(np.int8)
    done = CropCache(folder / "crops.npy", labels, splits)
    if done.crops.is_file():
        return done
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".crops.{uuid.uuid4().hex[:8]}.npy"
    out = np.lib.format.open_memmap(tmp, "w+", np.uint8, (len(labels), spec.size, spec.size, 3))
    items = [
        (row.path, found.faces, (row.left, row.top, row.right, row.bottom), spec)
        for row in found.rows.itertuples(index=False)
    ]
    bar = Progress(len(items), desc="face crops", unit="crop", enabled=progress)
    try:
        if workers > 1:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                for index, crop in enumerate(pool.map(cut_face, items, chunksize=16)):
                    out[index] = crop
                    bar.update()
        else:
            for index, item in enumerate(items):
                out[index] = cut_face(item)
                bar.update()
        out.flush()
        del out
        os.replace(tmp, done.crops)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    return done


# -- the per-epoch plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    """Ranges of the random changes: a flip with probability ½, a rotation in ±``degrees``, a
    scale in 1 ± ``scale`` (F-Mean's copies: ±2°, up to 7 %)."""

    degrees: float = 10.0
    scale: float = 0.1
    flip: bool = True


def epoch_plan(
    labels: np.ndarray, epoch: int, seed: int, *, balanced: bool, augment: Augment | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(order, theta)``: the positions into ``labels`` drawn for ``epoch`` (a permutation, or
    with ``balanced`` as many draws with replacement, each class equally likely) and each
    draw's affine matrix ``[n, 2, 3]`` (None without augmentation). Every worker computes the
    same plan from the seed, so the samples a worker sees do not depend on the worker count."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    count = len(labels)
    if balanced:
        per_class = np.bincount(labels)
        weights = torch.from_numpy(1.0 / per_class[labels]).double()
        order = torch.multinomial(weights, count, replacement=True, generator=generator)
    else:
        order = torch.randperm(count, generator=generator)
    if augment is None:
        return order, None
    draws = torch.rand(count, 3, generator=generator, dtype=torch.float64)
    angle = (draws[:, 0] * 2 - 1) * math.radians(augment.degrees)
    scale = 1 + (draws[:, 1] * 2 - 1) * augment.scale
    mirror = torch.where((draws[:, 2] < 0.5) & augment.flip, -1.0, 1.0)
    # As in enhance.transformed_copies: affine_grid takes the inverse map, the flip applied last.
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    zero = torch.zeros(count, dtype=torch.float64)
    theta = torch.stack(
        [torch.stack([cos * mirror, -sin, zero], 1), torch.stack([sin * mirror, cos, zero], 1)], 1
    )
    return order, theta.float()


def batch_input(
    crops: np.ndarray, positions: np.ndarray, input_size: int, theta: torch.Tensor | None = None
) -> torch.Tensor:
    """Float ``[B, 3, input, input]`` in 0..1: the crops resized as ``TorchBackbone`` resizes a
    store crop, then (training) turned, scaled and flipped with a black border."""
    x = torch.from_numpy(np.ascontiguousarray(crops[positions])).permute(0, 3, 1, 2).float() / 255
    if x.shape[-1] != input_size:
        x = F.interpolate(
            x, size=(input_size,) * 2, mode="bilinear", antialias=True, align_corners=False
        )
    if theta is not None:
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return x
