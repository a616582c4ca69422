"""RAVDESS (Livingstone & Russo, PLoS ONE 2018) as distributed on Zenodo (record 1188976; the same
description at smartlaboratory.org/ravdess)::

    ROOT/Actor_XX/MM-VV-EE-II-SS-RR-AA.mp4                   Video_Speech_Actor_XX.zip unpacked
    ROOT/Video_Speech_Actor_XX/Actor_XX/...mp4               (or each zip into its own folder)

Every file is named by 7 two-digit fields (the README's "File naming convention"): modality (01
full-AV, 02 video-only, 03 audio-only), vocal channel (01 speech, 02 song), emotion (01 neutral,
02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised), intensity (01 normal,
02 strong), statement (01, 02), repetition (01, 02), actor (01-24). The folder tree is searched
whole, so the audio zips (``.wav``) may sit beside the videos.

Kept: full-AV speech files (modality 01, channel 01): 60 per actor, 1440 in all, the 8 emotions
in the README's order. Counted as excluded: video-only and audio-only files (this project needs
both modalities in one file), and song files (channel 02: 6 emotions only, none for actor 18; the
RAVDESS benchmarks use speech, e.g. MAE-DFER's ``saved/data/ravdess/split0{1..6}``: 6 folds of
4 actors, 1440 speech clips).
The speaker is the actor; folds are drawn per actor (``speakers`` protocol).
"""

from __future__ import annotations

import re
from pathlib import Path

from avcore.datasets import profile
from feature_store.datasets.common import (
    Clip,
    DatasetError,
    Listing,
    Reader,
    check_media,
    index_media,
)

SOURCE = (
    "RAVDESS Zenodo record 1188976 README: Actor_XX/MM-VV-EE-II-SS-RR-AA.mp4 "
    "(Video_Speech_Actor_XX.zip), full-AV (01) speech (01) files"
)
PROFILE = profile("ravdess")
_NAME = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.(?:mp4|wav)", re.IGNORECASE)
_ACTOR_DIR = re.compile(r"Actor_(\d+)", re.IGNORECASE)
VIDEO_ONLY = "video-only (modality 02)"
AUDIO_ONLY = "audio-only (modality 03)"
SONG = "song (vocal channel 02)"
_RANGES = (
    ("modality", 3),
    ("vocal channel", 2),
    ("emotion", 8),
    ("intensity", 2),
    ("statement", 2),
    ("repetition", 2),
    ("actor", 24),
)


def _fields(path: Path) -> list[int]:
    match = _NAME.fullmatch(path.name)
    if match is None:
        raise DatasetError(f"{path}: not a RAVDESS name MM-VV-EE-II-SS-RR-AA (7 two-digit fields)")
    fields = [int(value) for value in match.groups()]
    for (what, top), value in zip(_RANGES, fields):
        if not 1 <= value <= top:
            raise DatasetError(f"{path}: {what} {value:02d}; the README allows 01-{top:02d}")
    folder = _ACTOR_DIR.fullmatch(path.parent.name)
    if folder and int(folder[1]) != fields[6]:
        raise DatasetError(f"{path}: actor {fields[6]:02d} in the name but in {path.parent.name}/")
    return fields


def read(root: Path) -> Listing:
    media = index_media(root, (".mp4", ".wav"), recursive=True)
    named = {name: path for name, path in media.items() if _NAME.fullmatch(name)}
    if not named:
        raise DatasetError(f"{root}: no RAVDESS files (Actor_XX/MM-VV-EE-II-SS-RR-AA.mp4) below it")
    listing = Listing()
    for _, path in sorted(named.items()):
        modality, channel, emotion, *_, actor = _fields(path)
        if modality != 1:
            listing.excluded[VIDEO_ONLY if modality == 2 else AUDIO_ONLY] += 1
        elif channel != 1:
            listing.excluded[SONG] += 1
        else:
            check_media(path)
            speaker = f"{actor:02d}"
            listing.clips.append(
                Clip(path.stem, path, "train", PROFILE.classes[emotion - 1], speaker=speaker)
            )
    return listing


READER = Reader(PROFILE, SOURCE, read)
