"""The paper's models (intra-modal attention, cross-modal fusion, classifier) and ``train_trial``,
which trains and scores one configuration.

    from trainables import load_trial_config, train_trial
    import feature_store
    data = feature_store.pair("data/demo/visual/basic", "data/demo/audio/spectrogram")
    result = train_trial(load_trial_config("conf/trial/paper-best.yaml"), data)

``python -m trainables fit --help`` trains one trial from the command line.

The names below load on first use (``avcore.lazy``), so ``import trainables.config`` or
``python -m trainables --help`` does not pay for torch; ``from trainables import X`` works as ever.
"""

from __future__ import annotations

from avcore.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "trainables.attention": [
            "ATTENTIONS",
            "MeanPool",
            "Pooling",
            "RelationAttention",
            "SelfAttention",
            "TransformerAttention",
        ],
        "trainables.config": ["TrialConfig", "load_trial_config", "validate_config"],
        "trainables.errors": ["ConfigError", "TrainablesError", "TrialDataError"],
        "trainables.fusion": ["FBP", "FUSIONS", "Concat", "Fusion"],
        "trainables.kinds": ["ATTENTION_KINDS", "FUSION_KINDS"],
        "trainables.model": ["EmotionModel", "build_model"],
        "trainables.result": ["TrialResult"],
        "trainables.train": ["train_trial"],
    },
)
