"""Emotion pretraining of the face backbones (the paper's Table 1), data-parallel on Ray Train.

    python -m feature_store finetune --images rafdb/ --recipe conf/store/ir50-msceleb.yaml \
        --out checkpoints/ir50_rafdb.pth [--epochs N] [--workers N] [--gpus-per-worker F]

``data`` cuts and caches the face crops and plans each epoch, ``loop`` is what every Ray worker
runs, ``run`` is the driver that writes the checkpoint a recipe then names.
"""

from __future__ import annotations

from feature_store.finetune.data import Augment
from feature_store.finetune.run import CHECKPOINT_FORMAT, DEFAULT_AUGMENT, finetune

__all__ = ["CHECKPOINT_FORMAT", "DEFAULT_AUGMENT", "Augment", "finetune"]
