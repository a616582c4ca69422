"""Released audio encoders as store extractors: the contract and the registry of kinds.

An ``AudioEncoder`` turns a clip's mono samples (at its ``sample_rate``) into ``[n, dim]`` float32
vectors, n growing with the clip's length, and says in ``meta`` what store.json records about it.
Each kind registers its class with ``@register_encoder("wavlm", ...)``; ``make_encoder`` builds the
one a recipe's ``encoder:`` section names (an unknown kind lists the known ones). The modules that
register (``speech_encoders``, ``clap_encoder``) import ``transformers`` and are imported here on
first use only, so ``python -m feature_store --help`` stays light.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from feature_store.audio.encoder_specs import ClapSpec, SpeechEncoderSpec
from feature_store.errors import StoreError

# The modules whose import registers the encoder kinds.
ENCODER_MODULES = ("feature_store.audio.speech_encoders", "feature_store.audio.clap_encoder")


class AudioEncoder(ABC):
    """A released model that turns a clip's samples into a sequence of vectors.

    Subclasses set ``sample_rate`` (what the clip is decoded to), ``dim`` and ``meta`` (store.json:
    the kind, model class, folder, weights' sha256, layers, pooling, preprocessing) in
    ``__init__``.
    """

    sample_rate: int
    dim: int
    meta: dict[str, Any]

    @abstractmethod
    def encode(self, samples: np.ndarray) -> np.ndarray:
        """``[n, dim]`` float32 vectors of mono float32 ``samples`` at ``sample_rate``, in time
        order."""

    @abstractmethod
    def count(self, num_samples: int) -> int:
        """How many vectors ``encode`` returns for a clip of ``num_samples`` samples."""


EncoderFactory = Callable[[Any, str], AudioEncoder]
ENCODERS: dict[str, EncoderFactory] = {}
_E = TypeVar("_E", bound=EncoderFactory)


def register_encoder(*kinds: str) -> Callable[[_E], _E]:
    """Decorator: ``factory(spec, device) -> AudioEncoder`` for the recipe kinds ``kinds``."""

    def register(factory: _E) -> _E:
        for kind in kinds:
            ENCODERS[kind] = factory
        return factory

    return register


def load_encoder_kinds() -> dict[str, EncoderFactory]:
    """Every registered kind (importing the modules that register them)."""
    for module in ENCODER_MODULES:
        importlib.import_module(module)
    return ENCODERS


def make_encoder(spec: SpeechEncoderSpec | ClapSpec, device: str = "cpu") -> AudioEncoder:
    """The encoder of a recipe's ``encoder:`` section, its weights loaded onto ``device``."""
    kinds = load_encoder_kinds()
    try:
        factory = kinds[spec.kind]
    except KeyError:
        raise StoreError(
            f"unknown audio encoder {spec.kind!r}; known: {', '.join(sorted(kinds))}"
        ) from None
    return factory(spec, device)


def average_pool(frames: np.ndarray, size: int) -> np.ndarray:
    """Mean of every ``size`` consecutive rows of ``[T, D]``: ``ceil(T / size)`` rows, the last
    one the mean of what is left."""
    if size == 1 or len(frames) == 0:
        return frames
    full = len(frames) // size * size
    pooled = frames[:full].reshape(-1, size, frames.shape[1]).mean(axis=1)
    if full < len(frames):
        pooled = np.concatenate([pooled, frames[full:].mean(axis=0, keepdims=True)])
    return pooled.astype(np.float32, copy=False)
