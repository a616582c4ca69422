"""AFEW's seven classes, in the order every ``[.., 7]`` score array and class-weight vector
follows, and its train-split class counts (773 clips; the paper's class weights start from them)."""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
NUM_CLASSES = len(CLASSES)
TRAIN_COUNTS: tuple[int, ...] = (133, 74, 81, 150, 144, 117, 74)
