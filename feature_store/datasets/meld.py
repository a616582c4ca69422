"""MELD (Poria et al., ACL 2019) as its authors distribute it (MELD.Raw.tar.gz; github.com/
declare-lab/MELD README.md, "Description of the .csv files" and "Description of Raw Data")::

    ROOT/train_sent_emo.csv  ROOT/dev_sent_emo.csv  ROOT/test_sent_emo.csv
    ROOT/train_splits/diaD_uttU.mp4                 train.tar.gz unpacked
    ROOT/dev_splits_complete/diaD_uttU.mp4          dev.tar.gz
    ROOT/output_repeated_splits_test/diaD_uttU.mp4  test.tar.gz

(each CSV and folder may also sit in ``ROOT/train/``, ``ROOT/dev/``, ``ROOT/test/``). The CSV
columns are Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season,
Episode, StartTime, EndTime; the clip of a row is ``dia{Dialogue_ID}_utt{Utterance_ID}.mp4``
(``utils/read_meld.py``). The folder names of dev and test are the archives' own (used by the
loaders of MELD's users; the README names only the archives). Dialogue ids restart in each split,
so a clip id is ``{train,dev,test}_diaD_uttU``; dev is read as split val, test keeps its labels.

Classes in the order of MELD's own baseline (README "Labelling": neutral 0, surprise 1, fear 2,
sadness 3, joy 4, disgust 5, anger 6); counts are the CSVs' (README "Dataset Distribution"). The
speaker is the CSV's Speaker name. The release lacks a few listed clips (dev ``dia110_utt7.mp4``,
declare-lab/MELD issues 22 and 27): such clips are counted as excluded (``missing file``) and the
first is named, so the rest of the split stays usable.
"""

from __future__ import annotations

import csv
from pathlib import Path

from avcore.datasets import class_index, profile
from feature_store.datasets.common import Clip, DatasetError, Listing, Reader, row_error

SOURCE = (
    "MELD README (github.com/declare-lab/MELD): {train,dev,test}_sent_emo.csv, videos "
    "dia{Dialogue_ID}_utt{Utterance_ID}.mp4 in train_splits, dev_splits_complete, "
    "output_repeated_splits_test"
)
PROFILE = profile("meld")
# (CSV prefix, manifest split, video folder)
SPLITS = (
    ("train", "train", "train_splits"),
    ("dev", "val", "dev_splits_complete"),
    ("test", "test", "output_repeated_splits_test"),
)
COLUMNS = ("Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")


def _find(root: Path, prefix: str, name: str, *, folder: bool) -> Path:
    for candidate in (root / name, root / prefix / name):
        if candidate.is_dir() if folder else candidate.is_file():
            return candidate
    raise DatasetError(f"{root}: no {name} (looked in {root}/ and {root / prefix}/)")


def _rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """``(line, row)`` of one ``*_sent_emo.csv``, line the record's first line in the file."""
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        # Only ids, labels and speakers are read: a stray byte in an utterance is no reason to stop.
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            missing = [name for name in COLUMNS if name not in header]
            if missing:
                raise row_error(path, 1, f"missing column(s) {missing}; MELD's CSVs have {COLUMNS}")
            reader.fieldnames = header
            start = reader.line_num + 1
            for row in reader:
                rows.append((start, {k: (v or "").strip() for k, v in row.items() if k}))
                start = reader.line_num + 1
    except csv.Error as exc:
        raise DatasetError(f"{path}: not a readable CSV file ({exc})") from None
    return rows


def read(root: Path) -> Listing:
    index = class_index(PROFILE.classes)
    listing = Listing()
    for prefix, split, folder_name in SPLITS:
        table = _find(root, prefix, f"{prefix}_sent_emo.csv", folder=False)
        folder = _find(root, prefix, folder_name, folder=True)
        present = {entry.name for entry in folder.iterdir() if not entry.name.startswith(".")}
        first: dict[str, int] = {}
        for line, row in _rows(table):
            dialogue, utterance = row["Dialogue_ID"], row["Utterance_ID"]
            if not dialogue.isdigit() or not utterance.isdigit():
                raise row_error(
                    table,
                    line,
                    f"Dialogue_ID {dialogue!r}, Utterance_ID {utterance!r}: expected whole numbers",
                )
            emotion = row["Emotion"].lower()
            if emotion not in index:
                raise row_error(
                    table,
                    line,
                    f"Emotion {row['Emotion']!r}; expected one of {', '.join(PROFILE.classes)}",
                )
            name = f"dia{int(dialogue)}_utt{int(utterance)}"
            if name in first:
                raise row_error(
                    table, line, f"{name} is listed twice (first on line {first[name]})"
                )
            first[name] = line
            if f"{name}.mp4" not in present:
                listing.missing(folder / f"{name}.mp4")
                continue
            clip = Clip(
                f"{prefix}_{name}",
                folder / f"{name}.mp4",
                split,
                PROFILE.classes[index[emotion]],
                speaker=row["Speaker"],
            )
            listing.clips.append(clip)
    return listing


READER = Reader(PROFILE, SOURCE, read)
