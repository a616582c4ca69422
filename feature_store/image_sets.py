"""Labelled face-image sets for ``finetune``, read from the layouts researchers have them in, with
their label sets mapped onto the seven basic expressions (``CLASSES``).

- a manifest CSV ``path,split,label`` (label: a class name; relative paths resolve against the
  CSV's folder): whole photos, cropped by the stores' face pipeline (``faces.FaceCropper``);
- FER+ (Microsoft/FERPlus after ``generate_training_data.py``): ``FER2013Train|Valid|Test/``
  each with a header-less ``label.csv`` of ``image, box, 10 vote counts`` (neutral, happiness,
  surprise, sadness, anger, disgust, fear, contempt, unknown, NF); the label is FER+'s majority
  vote (single votes dropped as outliers, then more than half of the rest); 48 px faces as given;
- RAF-DB basic: ``EmoLabel/list_patition_label.txt`` (``train_00001.jpg 5``; 1-7 = Surprise,
  Fear, Disgust, Happiness, Sadness, Anger, Neutral) and ``Image/aligned/NAME_aligned.jpg``;
- AffectNet: ``training.csv`` (train) and ``validation.csv`` (test; AffectNet has no public
  test set) with ``subDirectory_filePath`` under ``Manually_Annotated_Images/``, the face box
  ``face_x, face_y, face_width, face_height`` and ``expression`` 0-10 (Neutral, Happy, Sad,
  Surprise, Fear, Disgust, Anger, Contempt, None, Uncertain, No-Face); the box is cut like a
  store crop (extended by the recipe's ``faces.extend``), not re-detected.

Labels outside the 7 classes (contempt, none, uncertain, no face, no majority) are dropped and
counted. A set without a val split gets one from its train split (a stable hash of the file
name picks ``val_fraction`` of it). Bad input is one ``ImageSetError`` naming the file.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from avcore.datasets import class_index
from feature_store.errors import StoreError

# The seven basic expressions every supported image set labels (RAF-DB's basic set, FER+ and
# AffectNet without contempt): a fine-tuned backbone's head classifies these.
CLASSES: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
_INDEX = class_index(CLASSES)
FERPLUS_FOLDERS = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}
FERPLUS_VOTES = (
    "neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt", "unknown",
    "not a face",
)  # fmt: skip
RAFDB_LABELS = {
    1: "surprise",
    2: "fear",
    3: "disgust",
    4: "happy",
    5: "sad",
    6: "angry",
    7: "neutral",
}
AFFECTNET_LABELS = (
    "neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt", "none",
    "uncertain", "no face",
)  # fmt: skip
AFFECTNET_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height")
COLUMNS = ("path", "split", "label", "left", "top", "right", "bottom")


class ImageSetError(StoreError):
    """An image set is missing, in no known layout, or names a label or image it cannot."""


@dataclass(frozen=True)
class ImageSet:
    """The labelled images of one set: ``rows`` has ``path`` (absolute), ``split``, ``label``
    (index into CLASSES) and a face box (``left, top, right, bottom``; NaN when none).

    ``faces`` says where the face is: ``detect`` (find it with the stores' cropper), ``aligned``
    (the image is the face), ``box`` (cut the given box)."""

    layout: str
    source: Path
    faces: str
    rows: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            split: int((self.rows["split"] == split).sum()) for split in ("train", "val", "test")
        }


def read_image_set(path: str | os.PathLike[str], *, val_fraction: float = 0.1) -> ImageSet:
    """Recognise the layout of ``path`` (a manifest CSV, an AffectNet CSV, or a FER+, RAF-DB or
    AffectNet folder) and read its labelled images."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ImageSetError(f"{path}: no such image set (file or folder)")
    if path.is_file() and path.name == "list_patition_label.txt":
        path = path.parent.parent
    if path.is_file():
        header = _header(path)
        if {"path", "split", "label"} <= set(header):
            found = _read_manifest(path)
        elif set(AFFECTNET_COLUMNS) | {"expression"} <= set(header):
            found = _read_affectnet(path.parent, [path])
        else:
            raise ImageSetError(
                f"{path}: not an image set: expected a manifest CSV with columns path,split,label "
                f"or an AffectNet CSV ({', '.join(AFFECTNET_COLUMNS)}, expression)"
            )
    elif any((path / folder / "label.csv").is_file() for folder in FERPLUS_FOLDERS):
        found = _read_ferplus(path)
    elif (path / "EmoLabel" / "list_patition_label.txt").is_file():
        found = _read_rafdb(path)
    elif any((path / name).is_file() for name in ("training.csv", "validation.csv")):
        csvs = [
            path / name for name in ("training.csv", "validation.csv") if (path / name).is_file()
        ]
        found = _read_affectnet(path, csvs)
    else:
        raise ImageSetError(
            f"{path}: not an image set in a known layout: expected FER+ (FER2013Train/label.csv, "
            "as FERPlus's generate_training_data.py writes it), "
            "RAF-DB (EmoLabel/list_patition_label.txt), AffectNet (training.csv, validation.csv) "
            "or a manifest CSV (path,split,label)"
        )
    if found.rows.empty:
        raise ImageSetError(f"{path}: no labelled image in the 7 classes ({_dropped(found)})")
    return _with_val(found, val_fraction)


def _header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [name.strip() for name in next(csv.reader(handle), [])]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImageSetError(f"{path}: not a readable CSV file ({exc})") from None


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({"path": str, "split": str, "label": "int64"}).astype(
        {name: "float64" for name in COLUMNS[3:]}
    )


def _row(path: Path, split: str, label: int, box=(float("nan"),) * 4) -> dict:
    return dict(zip(COLUMNS, (str(path), split, label, *box)))


def _read_manifest(path: Path) -> ImageSet:
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        for line, record in enumerate(reader, start=2):
            values = {key: (record.get(key) or "").strip() for key in ("path", "split", "label")}
            split = values["split"].lower()
            if split not in ("train", "val", "test"):
                raise ImageSetError(
                    f"{path}:{line}: split {values['split']!r}; expected train, val or test"
                )
            label = _INDEX.get(values["label"].lower())
            if label is None:
                raise ImageSetError(
                    f"{path}:{line}: unknown label {values['label']!r}; expected one of "
                    f"{', '.join(CLASSES)}"
                )
            if not values["path"]:
                raise ImageSetError(f"{path}:{line}: empty path")
            image = Path(values["path"]).expanduser()
            rows.append(
                _row(image if image.is_absolute() else path.parent.resolve() / image, split, label)
            )
    return ImageSet("manifest", path, "detect", _frame(rows))


def _read_ferplus(root: Path) -> ImageSet:
    rows, dropped = [], Counter()
    for folder, split in FERPLUS_FOLDERS.items():
        labels = root / folder / "label.csv"
        if not labels.is_file():
            continue
        with open(labels, newline="", encoding="utf-8") as handle:
            for line, record in enumerate(csv.reader(handle), start=1):
                if not record:
                    continue
                try:
                    votes = [int(value) for value in record[2:]]
                except ValueError:
                    votes = []
                if len(votes) != len(FERPLUS_VOTES):
                    raise ImageSetError(
                        f"{labels}:{line}: expected an image name, a box and "
                        f"{len(FERPLUS_VOTES)} vote counts"
                    )
                name = _ferplus_majority(votes)
                if name in _INDEX:
                    rows.append(_row(root / folder / record[0].strip(), split, _INDEX[name]))
                else:
                    dropped[name] += 1
    return ImageSet("ferplus", root, "aligned", _frame(rows), dict(dropped))


def _ferplus_majority(votes: list[int]) -> str:
    """FER+'s ``majority`` mode: single votes are outliers; the winner needs over half the rest."""
    kept = [count if count > 1 else 0 for count in votes]
    top = max(kept)
    if top == 0 or top <= sum(kept) / 2:
        return "no majority"
    return FERPLUS_VOTES[kept.index(top)]


def _read_rafdb(root: Path) -> ImageSet:
    listing = root / "EmoLabel" / "list_patition_label.txt"
    rows, dropped = [], Counter()
    for line, text in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        parts = text.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) not in RAFDB_LABELS:
            raise ImageSetError(
                f"{listing}:{line}: expected 'NAME.jpg LABEL' with LABEL 1-7, got {text.strip()!r}"
            )
        name = parts[0]
        split = "test" if name.startswith("test") else "train"
        image = root / "Image" / "aligned" / f"{Path(name).stem}_aligned{Path(name).suffix}"
        rows.append(_row(image, split, _INDEX[RAFDB_LABELS[int(parts[1])]]))
    return ImageSet("rafdb", root, "aligned", _frame(rows), dict(dropped))


def _read_affectnet(root: Path, csvs: list[Path]) -> ImageSet:
    images = root / "Manually_Annotated_Images"
    images = images if images.is_dir() else root
    rows, dropped = [], Counter()
    for table in csvs:
        split = "test" if "validation" in table.name else "train"
        with open(table, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            for line, record in enumerate(reader, start=2):
                try:
                    expression = int(record["expression"])
                    x, y, width, height = (float(record[key]) for key in AFFECTNET_COLUMNS[1:])
                except (KeyError, TypeError, ValueError):
                    raise ImageSetError(
                        f"{table}:{line}: expected numbers in expression and the face box"
                    ) from None
                if not 0 <= expression < len(AFFECTNET_LABELS):
                    raise ImageSetError(f"{table}:{line}: unknown expression {expression} (0-10)")
                name = AFFECTNET_LABELS[expression]
                if name not in _INDEX:
                    dropped[name] += 1
                    continue
                box = (x, y, x + width, y + height)
                rows.append(
                    _row(images / record["subDirectory_filePath"], split, _INDEX[name], box)
                )
    return ImageSet("affectnet", root, "box", _frame(rows), dict(dropped))


def _with_val(found: ImageSet, fraction: float) -> ImageSet:
    rows = found.rows
    if (rows["split"] == "val").any() or fraction <= 0:
        return found
    # A stable hash of the file name, so the same images are held out on every run and machine.
    draw = rows["path"].map(
        lambda p: int.from_bytes(hashlib.sha1(Path(p).name.encode()).digest()[:4], "big") / 2**32
    )
    rows = rows.copy()
    rows.loc[(rows["split"] == "train") & (draw < fraction), "split"] = "val"
    return ImageSet(found.layout, found.source, found.faces, rows, found.dropped)


def _dropped(found: ImageSet) -> str:
    return ", ".join(f"{count} {name}" for name, count in sorted(found.dropped.items())) or "none"


def describe(found: ImageSet) -> str:
    """One line: layout, images per split, what was dropped."""
    counts = ", ".join(f"{n} {split}" for split, n in found.counts().items())
    return f"{found.source} ({found.layout}): {counts}; dropped: {_dropped(found)}"
