"""A small labelled face-image set made from a real face, for tests and benchmarks of
``finetune`` (no face data set can be downloaded here).

The face is scikit-image's ``astronaut`` (Eileen Collins), cut like a RAF-DB aligned image
(100×100 around dlib's box extended by 30 %). Each class gets its own change, the mouth region
darkened or lightened by a class-specific amount; each image then varies in brightness,
position and pixel noise, so the class is a small local signal under larger nuisances. The set
is written in the RAF-DB basic layout (``EmoLabel/list_patition_label.txt``,
``Image/aligned/``) or, with ``photos=True``, as whole photos (the face pasted into a larger
frame) listed in a manifest CSV, for the detect-and-crop path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from feature_store.image_sets import RAFDB_LABELS

ASTRONAUT_FACE = (175, 76, 265, 166)  # dlib HOG box (left, top, right, bottom), upsample 1
_RAF_NUMBER = {name: number for number, name in RAFDB_LABELS.items()}


def base_face(size: int = 100) -> np.ndarray:
    """The astronaut's face, box extended by 30 %, ``size``×``size`` uint8 RGB."""
    import skimage.data

    image = skimage.data.astronaut()
    left, top, right, bottom = ASTRONAUT_FACE
    cx, cy, half = (left + right) / 2, (top + bottom) / 2, (right - left) * 1.3 / 2
    box = tuple(round(v) for v in (cx - half, cy - half, cx + half, cy + half))
    return np.asarray(Image.fromarray(image).crop(box).resize((size, size), Image.BILINEAR))


def face_image(face: np.ndarray, class_index: int, rng: np.random.Generator) -> np.ndarray:
    """One image of class ``class_index``: the stripe texture, then brightness, shift, noise."""
    size = face.shape[0]
    image = face.astype(np.float64)
    mouth = (slice(int(size * 0.62), int(size * 0.88)), slice(int(size * 0.28), int(size * 0.72)))
    image[mouth] += (class_index - 1) * 40.0  # darker, unchanged, lighter, ... mouth
    image *= rng.uniform(0.75, 1.25)
    image = np.roll(image, tuple(rng.integers(-4, 5, size=2)), axis=(0, 1))
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_rafdb(
    root: Path,
    classes: Sequence[str] = ("happy", "sad", "surprise"),
    *,
    train_per_class: int = 12,
    test_per_class: int = 6,
    seed: int = 0,
) -> Path:
    """The set in RAF-DB basic layout under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    face = base_face()
    (root / "Image" / "aligned").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    lines = []
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        number = 0
        for index, name in enumerate(classes):
            for _ in range(per_class):
                number += 1
                stem = f"{split}_{number:05d}"
                Image.fromarray(face_image(face, index, rng)).save(
                    root / "Image" / "aligned" / f"{stem}_aligned.jpg", quality=95
                )
                lines.append(f"{stem}.jpg {_RAF_NUMBER[name]}")
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


def write_photos(
    root: Path, classes: Sequence[str] = ("Happy", "Sad"), *, per_split: int = 2, seed: int = 0
) -> Path:
    """Whole photos (the face at a random place in a 240×240 grey frame) and ``manifest.csv``."""
    rng = np.random.default_rng(seed)
    face = base_face(120)
    root.mkdir(parents=True, exist_ok=True)
    lines = ["path,split,label"]
    for split in ("train", "val", "test"):
        for index, name in enumerate(classes):
            for number in range(per_split):
                frame = np.full((240, 240, 3), 110, np.uint8)
                x, y = rng.integers(0, 120, size=2)
                frame[y : y + 120, x : x + 120] = face_image(face, index, rng)
                path = f"{split}_{name}_{number}.png"
                Image.fromarray(frame).save(root / path)
                lines.append(f"{path},{split},{name}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"
