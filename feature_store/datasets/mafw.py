"""MAFW (Liu et al., ACM MM 2022) as its authors distribute it::

    ROOT/data/clips/XXXXX.mp4          the 10045 clips (github.com/MAFW-database/MAFW README:
                                       "clips: 00151.mp4, ...")
    ROOT/Train & Test Set/single/no_caption/set_{1..5}/test.txt    "XXXXX.mp4 label" per line

The single-expression set has 11 classes, in the order of ``Labels/annotation.xlsx``'s columns and
of the authors' benchmark: anger, disgust, fear, happiness, neutral, sadness, surprise, contempt,
anxiety, helplessness, disappointment; a label is the class name as the lists write it. The five
test lists partition its 9172 clips; a clip's fold is the k of the ``set_k/test.txt`` naming it
(``train.txt`` is the other folds and is not read). The 873 clips outside the single-expression
set (compound labels, or marked invalid) are counted as excluded. The ``.xlsx`` label tables are
not read: the ``.txt`` lists carry the same labels.

Checked against the authors' benchmark loaders MAE-DFER (github.com/sunlicai/MAE-DFER,
``preprocess/mafw.py``: ``Train & Test Set/single/no_caption/set_k``, space-separated ``clip.mp4
label``, the class order above; its saved fold lists give the profile's class counts) and HiCMAE
(github.com/sunlicai/HiCMAE, ``preprocess/face_and_audio/extract_audio.py``: the 10045 videos in
``data/clips/*.mp4``; it notes 21 clips without an audio track). The ``Train & Test Set`` folder is
also found one level down (an archive unpacked into its own folder), and ``clips/`` at the root.
"""

from __future__ import annotations

from pathlib import Path

from avcore.datasets import class_index, profile
from feature_store.datasets.common import (
    Clip,
    DatasetError,
    Listing,
    Reader,
    index_media,
    numbered,
    require_dir,
    row_error,
    safe_id,
)

SOURCE = (
    "MAFW release (github.com/MAFW-database/MAFW): data/clips/XXXXX.mp4, "
    "Train & Test Set/single/no_caption/set_{1..5}/test.txt"
)
PROFILE = profile("mafw")
UNLISTED = "not in the single-expression set (compound or invalid)"
_SPLITS = "Train & Test Set"
_LISTS = r"single/no_caption/set_(\d+)/test\.txt"


def _split_root(root: Path) -> Path:
    if (root / _SPLITS).is_dir():
        return root / _SPLITS
    below = sorted(p / _SPLITS for p in root.iterdir() if (p / _SPLITS).is_dir())
    if below:
        return below[0]
    raise DatasetError(f"{root}: no '{_SPLITS}' folder with single/no_caption/set_k/test.txt")


def _read_list(path: Path) -> list[tuple[int, str, str]]:
    """``(line, clip file name, class name)`` of one ``test.txt``."""
    index = class_index(PROFILE.classes)
    rows: list[tuple[int, str, str]] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    for line, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].lower().endswith(".mp4"):
            raise row_error(path, line, f"{raw.strip()!r}: expected 'XXXXX.mp4 label'")
        name, label = fields
        if label.lower() not in index:
            raise row_error(
                path,
                line,
                f"clip {name} has label {label!r}; expected one of {', '.join(PROFILE.classes)}",
            )
        rows.append((line, name, PROFILE.classes[index[label.lower()]]))
    return rows


def read(root: Path) -> Listing:
    lists = numbered(
        _LISTS, _split_root(root), "single/no_caption/set_k/test.txt lists", PROFILE.protocol.folds
    )
    clips_dir = require_dir(root, ["data/clips", "clips"], "clip")
    videos = index_media(clips_dir, (".mp4",), recursive=False)
    listing = Listing()
    seen: dict[str, str] = {}
    for fold, path in sorted(lists.items()):
        for line, name, label in _read_list(path):
            if name in seen:
                raise row_error(path, line, f"clip {name} is also in {seen[name]}: in two folds")
            seen[name] = f"{path}:{line}"
            video = videos.get(name)
            if video is None:
                listing.missing(clips_dir / name)
                continue
            listing.clips.append(Clip(safe_id(path, Path(name).stem), video, "train", label, fold))
    unlisted = sum(1 for file_name in videos if file_name not in seen)
    if unlisted:
        listing.excluded[UNLISTED] += unlisted
    return listing


READER = Reader(PROFILE, SOURCE, read)
