"""DFEW (Jiang et al., ACM MM 2020) as its authors distribute it (the README.md of the release,
"File Information" section; dfew-dataset.github.io)::

    ROOT/Clip/original/**/XXXXX.mp4     the 16372 clips (data_part_*.zip unpacked there)
    ROOT/EmoLabel_DataSplit/test(single-labeled)/set_{1..5}.csv     video_name,label

``label`` 1..7 = Happy, Sad, Neutral, Angry, Surprise, Disgust, Fear (the README's "Notes"); 0
("non-single-labeled") occurs only in ``Annotation/annotation.xlsx``, and is counted as excluded
should a list hold it. The lists cover the 11697 single-labelled clips that kept a detected face
(12059 less 362); a clip's fold is the k of the test list ``set_k`` naming it, and fold k's train
part is the other folds' clips (the ``train(single-labeled)`` lists say the same and are not
read). The README spells the zip ``train(single_labeled).zip``; loaders unpack it as
``(single-labeled)``: both are accepted.

Cross-checked with the authors' loader (github.com/jiangxingxun/DFEW,
``DataParallel/libs/DFEW_Dataset.py``: columns ``video_name``, ``label``; names zero-padded to 5
digits) and MAE-DFER ``preprocess/dfew.py`` / DFER-CLIP ``annotation/preprocess_annotation.py``
(``EmoLabel_DataSplit/test(single-labeled)/set_k.csv``); their fold lists give the profile's
class counts. Videos not in any list (multi-label, or no face detected) are counted as excluded.
"""

from __future__ import annotations

import csv
from pathlib import Path

from avcore.datasets import profile
from feature_store.datasets.common import (
    Clip,
    DatasetError,
    Listing,
    Reader,
    index_media,
    numbered,
    require_dir,
    row_error,
)

SOURCE = (
    "DFEW release README (dfew-dataset.github.io): Clip/original/XXXXX.mp4, "
    "EmoLabel_DataSplit/test(single-labeled)/set_{1..5}.csv (video_name,label 1..7)"
)
PROFILE = profile("dfew")
UNLISTED = "not in the single-label fold lists (multi-label, or no face detected)"
NON_SINGLE = "non-single-label (label 0)"
_LISTS = r"test\(single[-_]labell?ed\)/set_(\d+)\.csv"


def _read_list(path: Path) -> list[tuple[int, str, int]]:
    """``(line, 5-digit name, label)`` of one ``set_k.csv``."""
    rows: list[tuple[int, str, int]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            if "video_name" not in header or "label" not in header:
                raise row_error(path, 1, f"header {header}; expected video_name,label")
            reader.fieldnames = header
            for line, row in enumerate(reader, start=2):
                name, label = (
                    (row.get("video_name") or "").strip(),
                    (row.get("label") or "").strip(),
                )
                if not name.isdigit() or not label.isdigit() or int(label) > len(PROFILE.classes):
                    raise row_error(
                        path,
                        line,
                        f"video_name {name!r}, label {label!r}: expected a clip "
                        f"number and a label 0..{len(PROFILE.classes)}",
                    )
                rows.append((line, name.zfill(5), int(label)))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable CSV file ({exc})") from None
    return rows


def read(root: Path) -> Listing:
    splits = require_dir(root, ["EmoLabel_DataSplit"], "label list")
    lists = numbered(_LISTS, splits, "test(single-labeled)/set_k.csv lists", PROFILE.protocol.folds)
    videos = index_media(
        require_dir(root, ["Clip/original"], "video (unpack Clip/original/data_part_*.zip)"),
        (".mp4",),
        recursive=True,
    )
    listing = Listing()
    seen: dict[str, str] = {}
    for fold, path in sorted(lists.items()):
        for line, name, label in _read_list(path):
            if name in seen:
                raise row_error(path, line, f"clip {name} is also in {seen[name]}: in two folds")
            seen[name] = f"{path}:{line}"
            if label == 0:
                listing.excluded[NON_SINGLE] += 1
                continue
            video = videos.get(f"{name}.mp4")
            if video is None:
                listing.missing(root / "Clip" / "original" / f"{name}.mp4")
                continue
            listing.clips.append(Clip(name, video, "train", PROFILE.classes[label - 1], fold))
    unlisted = sum(1 for file_name in videos if Path(file_name).stem not in seen)
    if unlisted:
        listing.excluded[UNLISTED] += unlisted
    return listing


READER = Reader(PROFILE, SOURCE, read)
