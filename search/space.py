"""The paper's design space as an Optuna define-by-run function.

``SpaceSampler(config)(optuna_trial)`` draws the modalities a trial reads (``space.modality``:
both, or one alone as a baseline), the store variants it reads, then the attention kinds and the
fusion, then only the parameters that exist for what was drawn (FBP's factor, output size and
dropout only under FBP fusion; the transformer's hidden size only when a modality uses transformer
attention; momentum only for SGD; the segment count only for segment sampling), then the training
hyperparameters. A parameter that does not apply is never sampled, so TPE models real conditionals
instead of learning from values that had no effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search.config import Range, SearchConfig
from search.trial_fields import FEATURE_KEYS
from trainables.config import CONDITIONS, reads

# Drawn first, in this order: every condition below depends only on these.
PARENT_KEYS = (
    "modality",
    "visual_attention",
    "audio_attention",
    "fusion",
    "optimizer",
    "frame_sampling",
)


class SpaceSampler:
    """The define-by-run function handed to ``OptunaSearch`` (picklable, so Tune can checkpoint it)."""

    def __init__(self, config: SearchConfig, defaults: Mapping[str, Any]) -> None:
        self.space = dict(config.space)
        self.features = {key: list(getattr(config.stores, key)) for key in FEATURE_KEYS}
        # What a trial gets for a parameter the space leaves out: conditions read these too.
        self.fixed = {**defaults, **config.trial}

    def __call__(self, trial: Any) -> None:
        params = dict(self.fixed)
        if "modality" in self.space:  # a single-modality trial draws only its own store variant
            params["modality"] = suggest(trial, "modality", self.space["modality"])
        for key, variants in self.features.items():
            if reads(params, key.removesuffix("_feature")):
                trial.suggest_categorical(key, variants)
        ordered = [k for k in PARENT_KEYS[1:] if k in self.space]
        ordered += [k for k in self.space if k not in PARENT_KEYS]
        for key in ordered:
            condition = CONDITIONS.get(key)
            if condition is not None and not condition(params):
                continue
            params[key] = suggest(trial, key, self.space[key])


def suggest(trial: Any, key: str, spec: Range | list[Any]) -> Any:
    if isinstance(spec, list):
        return trial.suggest_categorical(key, spec)
    if spec.is_int:
        step = int(spec.step) if spec.step is not None else 1
        return trial.suggest_int(key, int(spec.low), int(spec.high), step=step, log=spec.log)
    return trial.suggest_float(key, float(spec.low), float(spec.high), step=spec.step, log=spec.log)
