"""Cross-modal fusion of the pooled audio vector ``a`` and visual vector ``v``.

``FBP`` is the paper's factorised bilinear pooling (Eq. 9, Fig. 2); ``Concat`` is the baseline
``[a : v]``. Both are ``forward(a [B, dim_a], v [B, dim_v]) -> [B, out_dim]``. Register a new kind
with ``@FUSIONS.register("name")`` and declare its name in ``trainables.kinds``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avcore.registry import Registry
from trainables.errors import ConfigError

if TYPE_CHECKING:
    from trainables.config import TrialConfig


class Fusion(nn.Module, ABC):
    """Base of every fusion kind: ``forward(a, v) -> [B, out_dim]``."""

    out_dim: int

    @classmethod
    def from_config(cls, dim_a: int, dim_v: int, config: TrialConfig) -> Fusion:
        """Build from a trial config; kinds with hyperparameters override this."""
        return cls(dim_a, dim_v)

    @abstractmethod
    def forward(self, a: Tensor, v: Tensor) -> Tensor:
        """Fuse ``a [B, dim_a]`` and ``v [B, dim_v]`` into ``[B, out_dim]``."""


FUSIONS: Registry[Fusion] = Registry("fusion", error=ConfigError)

# sqrt has an infinite slope at 0; shifting by a tiny epsilon keeps the gradient finite while
# sqrt(|z| + eps) - sqrt(eps) still maps 0 to exactly 0.
_SQRT_EPS = 1e-8


def signed_sqrt(z: Tensor) -> Tensor:
    """``sign(z)·sqrt(|z|)``, made finite (value and gradient) at 0."""
    return torch.sign(z) * (torch.sqrt(z.abs() + _SQRT_EPS) - math.sqrt(_SQRT_EPS))


@FUSIONS.register("fbp")
class FBP(Fusion):
    """Factorised bilinear pooling: z = SumPooling(Ũᵀa ∘ Ṽᵀv, k), dropout, (signed sqrt), z/‖z‖."""

    def __init__(
        self,
        dim_a: int,
        dim_v: int,
        out: int,
        factor: int,
        dropout: float,
        signed_sqrt: bool = True,
    ) -> None:
        super().__init__()
        self.out_dim = out
        self.factor = factor
        self.u = nn.Linear(dim_a, out * factor)  # Ũ: audio to k·o dims
        self.v = nn.Linear(dim_v, out * factor)  # Ṽ: visual to k·o dims
        self.dropout = nn.Dropout(dropout)
        self.signed_sqrt = signed_sqrt

    @classmethod
    def from_config(cls, dim_a: int, dim_v: int, config: TrialConfig) -> Fusion:
        return cls(
            dim_a,
            dim_v,
            out=config.fbp_out,
            factor=config.fbp_factor,
            dropout=config.fbp_dropout,
            signed_sqrt=config.fbp_sqrt,
        )

    def forward(self, a: Tensor, v: Tensor) -> Tensor:
        joint = self.u(a) * self.v(v)  # Eq. 9: Ũᵀa ∘ Ṽᵀv, (B, o·k)
        joint = self.dropout(joint)  # Fig. 2: dropout after the element-wise product
        # Eq. 9: SumPooling(·, k) over non-overlapping windows of k consecutive entries -> (B, o)
        z = joint.view(joint.shape[0], self.out_dim, self.factor).sum(dim=-1)
        if self.signed_sqrt:
            z = signed_sqrt(z)  # power normalisation, as in MFB (the paper's ref. [32])
        return F.normalize(z, dim=-1)  # z <- z / ‖z‖ (a zero z stays zero)


@FUSIONS.register("concat")
class Concat(Fusion):
    """The baseline: ``[a : v]``."""

    def __init__(self, dim_a: int, dim_v: int) -> None:
        super().__init__()
        self.out_dim = dim_a + dim_v

    def forward(self, a: Tensor, v: Tensor) -> Tensor:
        return torch.cat([a, v], dim=-1)
