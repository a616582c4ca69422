"""Intra-modal fusion: pool a clip's variable number of frame features into one vector.

Every pooling maps ``x [B, T, D]`` with ``mask [B, T]`` (True = real frame) to ``[B, D_out]`` and
leaves the normalised per-frame weights in ``.weights [B, T]`` (zero on padding). Padded frames get
weight exactly 0, so a clip pools to the same vector alone or in a padded batch; a clip with no
frames at all (no face, no audio) pools to the zero vector, never NaN.

The equations are those of Zhou, Meng et al. (ICMI 2019), Section 2.3; each line of the math names
its equation. Register a new kind with ``@ATTENTIONS.register("name")`` and declare its name in
``trainables.kinds`` (where trial configs are checked without torch).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from avcore.registry import Registry
from trainables.errors import ConfigError

if TYPE_CHECKING:
    from trainables.config import TrialConfig


class Pooling(nn.Module, ABC):
    """Base of every attention kind: ``forward(x, mask) -> [B, out_dim]``, then ``.weights``."""

    out_dim: int
    weights: Tensor | None

    @classmethod
    def from_config(cls, dim: int, config: TrialConfig) -> Pooling:
        """Build from a trial config; kinds with hyperparameters override this."""
        return cls(dim)

    @abstractmethod
    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Pool ``x [B, T, D]`` over its real frames (``mask [B, T]``) into ``[B, out_dim]``."""


ATTENTIONS: Registry[Pooling] = Registry("attention", error=ConfigError)


def weighted_mean(x: Tensor, frame_weights: Tensor) -> tuple[Tensor, Tensor]:
    """``Σ w_i f_i / Σ w_i`` and the normalised weights; a clip whose weights are all 0 gets 0.

    x: (B, T, D); frame_weights: (B, T), non-negative and already 0 on padded frames.
    """
    total = frame_weights.sum(dim=1, keepdim=True)  # (B, 1)
    # An empty clip has total 0: divide by 1 instead so it yields zeros, not 0/0 = NaN.
    normalised = frame_weights / torch.where(total > 0, total, torch.ones_like(total))  # (B, T)
    return torch.einsum("bt,btd->bd", normalised, x), normalised


@ATTENTIONS.register("mean")
class MeanPool(Pooling):
    """The baseline: the plain average of the real frames."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = dim
        self.weights = None

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        pooled, self.weights = weighted_mean(x, mask.to(x.dtype))
        self.weights = self.weights.detach()
        return pooled


@ATTENTIONS.register("self")
class SelfAttention(Pooling):
    """Self-attention: a sigmoid weight per frame from the frame alone."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = dim
        self.w0 = nn.Linear(dim, 1, bias=False)  # W⁰ (d × 1)
        self.weights = None

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        alpha = torch.sigmoid(self.w0(x).squeeze(-1)) * mask  # Eq. 1: α_i = σ(f_iᵀ W⁰), (B, T)
        f_s, weights = weighted_mean(x, alpha)  # Eq. 2: f_s = Σ α_i f_i / Σ α_i, (B, D)
        self.weights = weights.detach()
        return f_s


@ATTENTIONS.register("relation")
class RelationAttention(Pooling):
    """Relation-attention: self-attention, then a second weight from the pair [f_i : f_s].

    Output is ``[B, 2·dim]``. Both equations are evaluated without materialising the ``(B, T, 2D)``
    pairs: ``[f_i : f_s]ᵀ W¹ = f_iᵀ W¹_f + f_sᵀ W¹_s`` and, since f_s is the same for every i,
    ``Σ αβ [f_i : f_s] / Σ αβ = [Σ αβ f_i / Σ αβ : f_s]`` (the tests check the literal form).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = 2 * dim
        self.w0 = nn.Linear(dim, 1, bias=False)  # W⁰ (d × 1)
        self.w1 = nn.Linear(2 * dim, 1, bias=False)  # W¹ (2d × 1), applied to [f_i : f_s]
        self.weights = None

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        dim = x.shape[-1]
        alpha = torch.sigmoid(self.w0(x).squeeze(-1)) * mask  # Eq. 1, (B, T)
        f_s, _ = weighted_mean(x, alpha)  # Eq. 2, (B, D)
        w1_frame, w1_global = self.w1.weight[0, :dim], self.w1.weight[0, dim:]
        relation = x @ w1_frame + (f_s @ w1_global)[:, None]  # [f_i : f_s]ᵀ W¹, (B, T)
        beta = torch.sigmoid(relation)  # Eq. 3: β_i = σ([f_i : f_s]ᵀ W¹)
        f_frames, weights = weighted_mean(
            x, alpha * beta
        )  # Eq. 4, frame half: Σ α_i β_i f_i / Σ α_i β_i
        self.weights = weights.detach()
        return torch.cat([f_frames, f_s], dim=-1)  # Eq. 4: f_r = [· : f_s], (B, 2D)


@ATTENTIONS.register("transformer")
class TransformerAttention(Pooling):
    """Transformer-attention: a weight from a tanh projection of the frame to ``hidden`` dims."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.out_dim = dim
        self.w2 = nn.Linear(dim, hidden)  # W² (m × d) and b
        self.u = nn.Linear(hidden, 1, bias=False)  # uᵗ
        self.weights = None

    @classmethod
    def from_config(cls, dim: int, config: TrialConfig) -> Pooling:
        return cls(dim, config.transformer_hidden)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        f_prime = self.w2(x)  # Eq. 5: f'_i = W² f_i + b, (B, T, m)
        score = self.u(torch.tanh(f_prime)).squeeze(-1)  # Eq. 6 exponent: uᵀ tanh(f'_i), (B, T)
        score = score.masked_fill(~mask, float("-inf"))  # padded frames: exp(-inf) = 0
        # Subtracting the per-clip maximum keeps exp() finite and cancels in the ratio of Eq. 7;
        # an empty clip has max -inf, replaced by 0 so its weights stay 0 instead of NaN.
        shift = score.detach().amax(dim=1, keepdim=True)
        shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
        y = torch.exp(score - shift)  # Eq. 6: y_i = exp(uᵀ tanh(f'_i)), up to a common factor
        f_t, weights = weighted_mean(x, y)  # Eq. 7: f_t = Σ y_i f_i / Σ y_i
        self.weights = weights.detach()
        return f_t
