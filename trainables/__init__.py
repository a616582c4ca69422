"""The paper's models (intra-modal attention, cross-modal fusion, classifier) and the trial function.

    from trainables import load_trial_config, train_trial
    import feature_store
    data = feature_store.pair("data/demo/visual/basic", "data/demo/audio/spectrogram")
    result = train_trial(load_trial_config("conf/trial/paper-best.yaml"), data)

``python -m trainables fit --help`` trains one trial from the command line.
"""

from __future__ import annotations

from trainables.attention import (
    ATTENTIONS,
    MeanPool,
    Pooling,
    RelationAttention,
    SelfAttention,
    TransformerAttention,
)
from trainables.config import TrialConfig, load_trial_config, validate_config
from trainables.errors import ConfigError, TrainablesError, TrialDataError
from trainables.fusion import FBP, FUSIONS, Concat, Fusion
from trainables.model import EmotionModel, build_model
from trainables.train import TrialResult, train_trial

__all__ = [
    "ATTENTIONS",
    "FBP",
    "FUSIONS",
    "Concat",
    "ConfigError",
    "EmotionModel",
    "Fusion",
    "MeanPool",
    "Pooling",
    "RelationAttention",
    "SelfAttention",
    "TrainablesError",
    "TransformerAttention",
    "TrialConfig",
    "TrialDataError",
    "TrialResult",
    "build_model",
    "load_trial_config",
    "train_trial",
    "validate_config",
]
