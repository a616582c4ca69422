"""The typed trial configuration and its loader.

Every field is a flat scalar, so a config maps 1:1 onto Optuna parameters and MLflow params.

    config = load_trial_config("conf/trial/paper-best.yaml", ["lr=3e-4", "fusion=concat"])

Unknown keys, unknown kinds and out-of-range values raise ``ConfigError`` with one line naming the
file (or the ``--set`` override) and the key; a renamed key names its new name. The kinds are
checked against ``trainables.kinds``, so this module imports no torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from avcore import guards
from avcore.parsing import parse_key_value, pydantic_line
from trainables.errors import ConfigError
from trainables.kinds import ATTENTION_KINDS, FUSION_KINDS

# Keys an earlier version read, with the key that replaced them: refused with the new name, never
# silently accepted (a config that kept the old key would otherwise train something else).
RENAMED_KEYS = {"class_balanced": "balanced_loss"}


class TrialConfig(BaseModel):
    """One trial: model, optimisation and data sampling."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modality: Literal["both", "visual", "audio"] = Field(
        "both",
        description="what the model reads: both, fused; or visual or audio alone (the paper's "
        "single-modality baselines, e.g. audio alone 38 %)",
    )
    visual_attention: str = Field(
        "transformer", description="pooling of visual frames (ATTENTION_KINDS)"
    )
    audio_attention: str = Field(
        "transformer", description="pooling of audio vectors (ATTENTION_KINDS)"
    )
    fusion: str = Field("fbp", description="cross-modal fusion (FUSION_KINDS)")
    fbp_factor: int = Field(4, ge=1, le=64, description="FBP sum-pooling window k")
    fbp_out: int = Field(128, ge=1, le=8192, description="FBP output dims o")
    fbp_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout inside FBP")
    fbp_sqrt: bool = Field(True, description="signed square root before FBP's l2 normalisation")
    transformer_hidden: int = Field(128, ge=1, le=8192, description="m of W² in Eq. 5")
    dropout: float = Field(0.3, ge=0.0, lt=1.0, description="dropout before the classifier")
    optimizer: Literal["sgd", "adam", "adamw"] = Field("adamw", description="optimiser")
    lr: float = Field(1e-3, gt=0.0, le=10.0, description="learning rate")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum")
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0, description="weight decay")
    lr_schedule: Literal["constant", "cosine", "step"] = Field(
        "cosine", description="per-epoch learning-rate schedule (step: x0.1 every third)"
    )
    epochs: int = Field(30, ge=1, le=10000, description="training epochs")
    batch_size: int = Field(32, ge=1, le=65536, description="training clips per batch")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="cross-entropy label smoothing")
    balanced_loss: bool = Field(
        False, description="weight the training loss by inverse class frequency"
    )
    frame_sampling: Literal["all", "segments"] = Field(
        "all", description="training frames: all, or one random frame per segment (FAN)"
    )
    frame_segments: int = Field(
        8, ge=1, le=4096, description="K segments for frame_sampling=segments"
    )
    seed: int = Field(0, ge=0, description="seed of initialisation, shuffling and sampling")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available")

    @field_validator("visual_attention", "audio_attention")
    @classmethod
    def _known_attention(cls, name: str) -> str:
        return ATTENTION_KINDS.check(name)

    @field_validator("fusion")
    @classmethod
    def _known_fusion(cls, name: str) -> str:
        return FUSION_KINDS.check(name)

    def label(self, visual_feature: str | None = None, audio_feature: str | None = None) -> str:
        """This trial's ``trial_label``."""
        return trial_label(self.model_dump(), visual_feature, audio_feature)

    def used(self) -> dict[str, Any]:
        """The settings this configuration trains with: ``model_dump`` less those ``CONDITIONS``
        says have no effect here (``fbp_out`` under concatenation, ``momentum`` for AdamW, ...)."""
        return used_settings(self.model_dump())


def _modality(config: Mapping[str, Any]) -> str:
    # MLflow params of runs recorded before the field existed hold no modality: both.
    return str(config.get("modality") or "both")


def reads(config: Mapping[str, Any], modality: str) -> bool:
    """Whether a model of this config reads ``modality`` (visual or audio)."""
    return _modality(config) in ("both", modality)


def _reads(modality: str) -> Callable[[Mapping[str, Any]], bool]:
    """``reads`` for one modality, as a condition."""
    return lambda config: reads(config, modality)


def _fused(config: Mapping[str, Any]) -> bool:
    return _modality(config) == "both"


def _fbp(config: Mapping[str, Any]) -> bool:
    return _fused(config) and config.get("fusion") == "fbp"


def _transformer(config: Mapping[str, Any]) -> bool:
    return any(
        reads(config, modality) and config.get(f"{modality}_attention") == "transformer"
        for modality in ("visual", "audio")
    )


# Settings read only under a choice of another (model.py, fusion.py, attention.py, optim.py,
# tensors.py): a modality's attention only when the model reads that modality, the fusion only when
# it reads both, FBP's settings only by FBP fusion, the hidden size only by transformer attention,
# momentum only by SGD, the segment count only by segment sampling. A search samples a setting only
# where it applies (``search.space``) and a run records it only there.
CONDITIONS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "visual_attention": _reads("visual"),
    "audio_attention": _reads("audio"),
    "fusion": _fused,
    "fbp_factor": _fbp,
    "fbp_out": _fbp,
    "fbp_dropout": _fbp,
    "fbp_sqrt": _fbp,
    "transformer_hidden": _transformer,
    "momentum": lambda config: config.get("optimizer") == "sgd",
    "frame_segments": lambda config: config.get("frame_sampling") == "segments",
}


def used_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without the settings its other choices make irrelevant (``CONDITIONS``)."""
    return {
        key: value
        for key, value in config.items()
        if key not in CONDITIONS or CONDITIONS[key](config)
    }


def trial_label(
    config: Mapping[str, Any], visual_feature: str | None = None, audio_feature: str | None = None
) -> str:
    """What a reader needs to tell trials apart, e.g. ``f-mean+logmel relation/transformer
    concat``: the store variants, the visual/audio attention and the fusion. ``config`` may be a
    trial run's MLflow params (strings), which also name the variants."""
    modality = _modality(config)
    if modality != "both":  # one modality alone: its store variant and its attention
        feature = (visual_feature if modality == "visual" else audio_feature) or config.get(
            f"{modality}_feature"
        )
        model = f"{config.get(f'{modality}_attention')} {modality}-only"
        return f"{feature} {model}" if feature else model
    visual_feature = visual_feature or config.get("visual_feature")
    audio_feature = audio_feature or config.get("audio_feature")
    features = "+".join(str(f) for f in (visual_feature, audio_feature) if f)
    model = (
        f"{config.get('visual_attention')}/{config.get('audio_attention')} {config.get('fusion')}"
    )
    return f"{features} {model}" if features else model


def _plain(value: Any) -> Any:
    """numpy scalars (as Ray/Optuna hand them out) as the Python scalars pydantic expects. Known by
    their module, so validating a config does not import numpy."""
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


def validate_config(
    values: TrialConfig | Mapping[str, Any],
    *,
    sources: Mapping[str, str] | None = None,
    where: str = "config",
) -> TrialConfig:
    """A ``TrialConfig`` from a mapping; errors name the key and where its value came from."""
    if isinstance(values, TrialConfig):
        return values
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"{where}: a trial config must be a mapping of key: value, got {type(values).__name__}"
        )
    sources = sources or {}
    unknown = [key for key in values if key not in TrialConfig.model_fields]
    if unknown:
        key = unknown[0]
        if key in RENAMED_KEYS:
            raise ConfigError(
                f"{sources.get(key, where)}: key {key!r} is now called {RENAMED_KEYS[key]!r}; "
                "rename it"
            )
        raise ConfigError(
            f"{sources.get(key, where)}: unknown key {key!r}; known: {', '.join(TrialConfig.model_fields)}"
        )
    try:
        return TrialConfig.model_validate({key: _plain(value) for key, value in values.items()})
    except ValidationError as exc:
        key = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
        raise ConfigError(pydantic_line(exc, sources.get(key, where), show_input=True)) from None


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` with the value parsed as YAML (``lr=1e-3`` is a float, ``fbp_sqrt=no`` a bool)."""
    return parse_key_value(text, error=ConfigError)


def load_trial_config(
    path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()
) -> TrialConfig:
    """Read a trial YAML (``None``: all defaults) and apply ``key=value`` overrides."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        loaded = guards.read_yaml(path, "trial config", error=ConfigError)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"{path}: expected a mapping of key: value, got {type(loaded).__name__}"
            )
        values.update(loaded)
        sources.update(dict.fromkeys(loaded, str(path)))
    for text in overrides:
        key, value = parse_override(text)
        values[key] = value
        sources[key] = f"--set {text}"
    return validate_config(values, sources=sources, where=where)
