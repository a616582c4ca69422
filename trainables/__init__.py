"""The paper's models (intra-modal attention, cross-modal fusion, classifier) and ``train_trial``,
which trains and scores one configuration.

    from trainables import load_trial_config, train_trial
    import feature_store
    data = feature_store.pair("data/demo/visual/basic", "data/demo/audio/spectrogram")
    result = train_trial(load_trial_config("conf/trial/paper-best.yaml"), data)

``python -m trainables fit --help`` trains one trial from the command line.

The names below are imported on first use (PEP 562), so ``import trainables.config`` or
``python -m trainables --help`` does not pay for torch; ``from trainables import X`` works as ever.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it
_EXPORTS = {
    "ATTENTIONS": "trainables.attention",
    "MeanPool": "trainables.attention",
    "Pooling": "trainables.attention",
    "RelationAttention": "trainables.attention",
    "SelfAttention": "trainables.attention",
    "TransformerAttention": "trainables.attention",
    "TrialConfig": "trainables.config",
    "load_trial_config": "trainables.config",
    "validate_config": "trainables.config",
    "ConfigError": "trainables.errors",
    "TrainablesError": "trainables.errors",
    "TrialDataError": "trainables.errors",
    "FBP": "trainables.fusion",
    "FUSIONS": "trainables.fusion",
    "Concat": "trainables.fusion",
    "Fusion": "trainables.fusion",
    "ATTENTION_KINDS": "trainables.kinds",
    "FUSION_KINDS": "trainables.kinds",
    "EmotionModel": "trainables.model",
    "build_model": "trainables.model",
    "TrialResult": "trainables.result",
    "train_trial": "trainables.train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trainables' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
