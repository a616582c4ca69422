"""CREMA-D (Cao et al., IEEE TAC 2014) as its authors distribute it (github.com/
CheyneyComputerScience/CREMA-D, README.md, "Filename labeling conventions" and "Video Files")::

    ROOT/VideoFlash/AAAA_SSS_EEE_LL.flv     the 7442 audio-visual clips (git-lfs)
    ROOT/AudioWAV/AAAA_SSS_EEE_LL.wav       the audio alone (not needed: the .flv has it)

``AAAA`` the actor (1001-1091, 91 actors, ``VideoDemographics.csv``), ``SSS`` one of 12
sentences, ``EEE`` the emotion the actor was asked to show (ANG, DIS, FEA, HAP, NEU, SAD: Anger,
Disgust, Fear, Happy, Neutral, Sad, the README's order), ``LL`` the level (LO, MD, HI, XX). The
label is that intended emotion, not the raters' vote (``processedResults``), as in the
benchmarks (MAE-DFER, HiCMAE). The README lists four files that do not show what their names say
(two without audio and very short, one without duration, one a minute long holding every emotion
of its sentence); they are counted as excluded, as HiCMAE's audio-visual preprocessing does
(``preprocess/creamd_av.py``, ``broken_samples``). A git-lfs pointer in place of a video (the
repository downloaded as a zip) is refused with one line. The speaker is the actor; folds are
drawn per actor (``speakers`` protocol).
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
    require_dir,
)

SOURCE = (
    "CREMA-D README (github.com/CheyneyComputerScience/CREMA-D): "
    "VideoFlash/ActorID_Sentence_Emotion_Level.flv"
)
PROFILE = profile("crema-d")
CODES = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
LEVELS = ("LO", "MD", "HI", "XX")
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
BROKEN = frozenset({"1076_MTI_NEU_XX", "1076_MTI_SAD_XX", "1064_TIE_SAD_XX", "1064_IEO_DIS_MD"})
BROKEN_REASON = "broken per the CREMA-D README (wrong or empty content)"
_NAME = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.flv", re.IGNORECASE)


def _parse(path: Path) -> tuple[str, str]:
    """``(actor, class name)`` of one file name; one line when it is not a CREMA-D name."""
    match = _NAME.fullmatch(path.name)
    if match is None:
        raise DatasetError(f"{path}: not a CREMA-D name ActorID_Sentence_Emotion_Level.flv")
    actor, sentence, emotion, level = (value.upper() for value in match.groups())
    if not 1001 <= int(actor) <= 1091:
        raise DatasetError(f"{path}: actor {actor}; the README's actors are 1001-1091")
    for what, value, known in (
        ("sentence", sentence, SENTENCES),
        ("emotion", emotion, CODES),
        ("level", level, LEVELS),
    ):
        if value not in known:
            raise DatasetError(f"{path}: {what} {value!r}; expected one of {', '.join(known)}")
    return actor, PROFILE.classes[CODES.index(emotion)]


def read(root: Path) -> Listing:
    folder = require_dir(root, ["VideoFlash"], "video")
    videos = index_media(folder, (".flv",), recursive=False)
    if not videos:
        raise DatasetError(f"{folder}: no .flv videos")
    listing = Listing()
    for _, path in sorted(videos.items()):
        actor, label = _parse(path)
        if path.stem in BROKEN:
            listing.excluded[BROKEN_REASON] += 1
            continue
        check_media(path)
        listing.clips.append(Clip(path.stem, path, "train", label, speaker=actor))
    return listing


READER = Reader(PROFILE, SOURCE, read)
