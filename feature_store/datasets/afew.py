"""AFEW 7.0 (EmotiW 2017-2019 audio-video sub-challenge) as the organisers distribute it::

    ROOT/Train_AFEW/<Class>/*.avi      Class: Angry Disgust Fear Happy Neutral Sad Surprise
    ROOT/Val_AFEW/<Class>/*.avi        read as split val
    ROOT/Test_AFEW/**/*.avi            optional, unlabelled: split test, empty label

Other folders inside ``Train_AFEW``/``Val_AFEW`` (the organisers' ``AlignedFaces_LBPTOP_Points``)
are not clips and are skipped. The class folders are the layout every AFEW loader reads, e.g.
Emotion-FAN's ``data/video/train_afew/<Class>`` (github.com/Open-Debin/Emotion-FAN,
``data/face/readme.md``); the counts are EmotiW 2016-2019's (albanie/mcnDatasets
``afew3.0/README.md``: train 773, val 383). The clip id is the file stem (the id EmotiW
submissions use); a stem found twice is prefixed with its split.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from avcore.datasets import profile
from feature_store.datasets.common import Clip, DatasetError, Listing, Reader, safe_id

SOURCE = "EmotiW 2019 AFEW 7.0 release: Train_AFEW/<Class>/*.avi, Val_AFEW/<Class>/*.avi, Test_AFEW/*.avi"
PROFILE = profile("afew")
SPLITS = (("Train_AFEW", "train"), ("Val_AFEW", "val"))


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.avi") if not p.name.startswith("."))


def read(root: Path) -> Listing:
    found: list[tuple[Path, str, str]] = []  # (path, split, label)
    for folder, split in SPLITS:
        if not (root / folder).is_dir():
            raise DatasetError(f"{root}: no {folder}/ folder (AFEW layout: {SOURCE})")
        classes = {p.name.lower(): p for p in (root / folder).iterdir() if p.is_dir()}
        lacking = [name for name in PROFILE.classes if name.lower() not in classes]
        if lacking:
            raise DatasetError(
                f"{root / folder}: no class folder {lacking[0]}/; expected {', '.join(PROFILE.classes)}"
            )
        for name in PROFILE.classes:
            found += [(path, split, name) for path in _videos(classes[name.lower()])]
    if (root / "Test_AFEW").is_dir():
        found += [(path, "test", "") for path in _videos(root / "Test_AFEW")]
    stems = Counter(path.stem for path, _, _ in found)
    listing = Listing()
    for path, split, label in found:
        clip_id = path.stem if stems[path.stem] == 1 else f"{split}_{path.stem}"
        listing.clips.append(Clip(safe_id(path, clip_id), path, split, label))
    ids = Counter(clip.clip_id for clip in listing.clips)
    twice = [clip for clip in listing.clips if ids[clip.clip_id] > 1]
    if twice:
        clip = twice[0]
        raise DatasetError(
            f"{clip.path}: clip {clip.path.stem!r} is in two class folders of {clip.split}"
        )
    return listing


READER = Reader(PROFILE, SOURCE, read)
