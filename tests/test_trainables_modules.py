"""trainables' attention and fusion modules against hand computations of the paper's equations."""

from __future__ import annotations

import pytest
import torch

from trainables import (
    ATTENTIONS,
    FBP,
    FUSIONS,
    Concat,
    ConfigError,
    MeanPool,
    RelationAttention,
    SelfAttention,
    TrainablesError,
    TransformerAttention,
)
from trainables.fusion import signed_sqrt
from trainables.kinds import ATTENTION_KINDS, FUSION_KINDS

DIM = 5


def make_pooling(name: str, dim: int = DIM):
    torch.manual_seed(0)
    cls = ATTENTIONS[name]
    return cls(dim, 3) if cls is TransformerAttention else cls(dim)


def clip(length: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(
        length, DIM, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def pool_one(pooling, frames: torch.Tensor) -> torch.Tensor:
    return pooling(frames[None], torch.ones(1, len(frames), dtype=torch.bool))[0]


def test_self_attention_is_eq_1_2():
    pooling = make_pooling("self").double()
    f = clip(4)
    w0 = pooling.w0.weight[0]
    alpha = torch.stack([torch.sigmoid(fi @ w0) for fi in f])  # Eq. 1
    expected = sum(a * fi for a, fi in zip(alpha, f)) / alpha.sum()  # Eq. 2
    torch.testing.assert_close(pool_one(pooling, f), expected)
    torch.testing.assert_close(pooling.weights[0], alpha / alpha.sum())


def test_relation_attention_is_eq_3_4_literally():
    pooling = make_pooling("relation").double()
    f = clip(4)
    alpha = torch.sigmoid(f @ pooling.w0.weight[0])
    f_s = (alpha[:, None] * f).sum(0) / alpha.sum()
    pairs = torch.stack([torch.cat([fi, f_s]) for fi in f])  # [f_i : f_s]
    beta = torch.sigmoid(pairs @ pooling.w1.weight[0])  # Eq. 3
    expected = (alpha[:, None] * beta[:, None] * pairs).sum(0) / (alpha * beta).sum()  # Eq. 4
    out = pool_one(pooling, f)
    assert out.shape == (2 * DIM,) and pooling.out_dim == 2 * DIM
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(pooling.weights[0], alpha * beta / (alpha * beta).sum())


def test_transformer_attention_is_eq_5_7():
    pooling = make_pooling("transformer").double()
    f = clip(4)
    f_prime = f @ pooling.w2.weight.T + pooling.w2.bias  # Eq. 5
    y = torch.exp(torch.tanh(f_prime) @ pooling.u.weight[0])  # Eq. 6
    expected = (y[:, None] * f).sum(0) / y.sum()  # Eq. 7
    torch.testing.assert_close(pool_one(pooling, f), expected)
    torch.testing.assert_close(pooling.weights[0], y / y.sum())


def test_transformer_attention_survives_huge_scores():
    pooling = make_pooling("transformer").double()
    with torch.no_grad():
        pooling.u.weight.fill_(1000.0)  # exp(±3000) overflows without the max shift
    out = pool_one(pooling, clip(6))
    assert torch.isfinite(out).all()


def test_mean_pool_is_the_average():
    f = clip(3)
    torch.testing.assert_close(pool_one(MeanPool(DIM).double(), f), f.mean(0))


@pytest.mark.parametrize("name", list(ATTENTIONS))
def test_padding_does_not_change_the_output(name):
    pooling = make_pooling(name).double()
    short, long = clip(2, seed=3), clip(7, seed=4)
    alone = pool_one(pooling, short)
    weights_alone = pooling.weights[0].clone()
    batch = torch.full((2, 7, DIM), 1e3, dtype=torch.float64)  # garbage where padded
    batch[0, :2], batch[1] = short, long
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0, :2], mask[1] = True, True
    padded = pooling(batch, mask)
    torch.testing.assert_close(padded[0], alone)
    torch.testing.assert_close(pooling.weights[0, :2], weights_alone)
    assert (pooling.weights[0, 2:] == 0).all()


@pytest.mark.parametrize("name", list(ATTENTIONS))
def test_frame_order_does_not_change_the_output(name):
    pooling = make_pooling(name).double()
    f = clip(6)
    permutation = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(pool_one(pooling, f[permutation]), pool_one(pooling, f))


@pytest.mark.parametrize("name", list(ATTENTIONS))
def test_empty_clip_gives_zeros_and_finite_gradients(name):
    pooling = make_pooling(name)
    x = torch.randn(2, 3, DIM, requires_grad=True)
    mask = torch.tensor([[False, False, False], [True, True, False]])
    out = pooling(x, mask)
    assert out.shape == (2, pooling.out_dim)
    assert (out[0] == 0).all() and torch.isfinite(out).all()
    assert (pooling.weights[0] == 0).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in pooling.parameters())


def test_fbp_sum_pools_non_overlapping_windows_and_normalises():
    torch.manual_seed(0)
    fbp = FBP(dim_a=3, dim_v=4, out=5, factor=2, dropout=0.0, signed_sqrt=False).eval()
    a, v = torch.randn(2, 3), torch.randn(2, 4)
    joint = fbp.u(a) * fbp.v(v)  # Ũᵀa ∘ Ṽᵀv, (2, 10)
    z = torch.stack([joint[:, 2 * j] + joint[:, 2 * j + 1] for j in range(5)], dim=1)
    expected = z / z.norm(dim=1, keepdim=True)
    torch.testing.assert_close(fbp(a, v), expected)


def test_fbp_signed_sqrt_and_unit_norm():
    torch.manual_seed(0)
    fbp = FBP(3, 4, out=6, factor=3, dropout=0.5).eval()
    a, v = torch.randn(8, 3), torch.randn(8, 4)
    out = fbp(a, v)
    assert out.shape == (8, 6)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(8))
    joint = fbp.u(a) * fbp.v(v)
    z = joint.view(8, 6, 3).sum(-1)
    expected = torch.sign(z) * z.abs().sqrt()
    torch.testing.assert_close(
        out, expected / expected.norm(dim=1, keepdim=True), atol=1e-4, rtol=1e-4
    )


def test_fbp_is_finite_at_zero():
    fbp = FBP(3, 4, out=2, factor=2, dropout=0.0)
    with torch.no_grad():
        fbp.u.bias.zero_()
    a = torch.zeros(1, 3, requires_grad=True)
    out = fbp(a, torch.randn(1, 4))
    assert (out == 0).all()
    out.sum().backward()
    assert torch.isfinite(a.grad).all()
    z = torch.zeros(3, requires_grad=True)
    signed_sqrt(z).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_concat_is_audio_then_visual():
    a, v = torch.randn(2, 3), torch.randn(2, 4)
    fused = Concat(3, 4)(a, v)
    assert Concat(3, 4).out_dim == 7
    torch.testing.assert_close(fused, torch.cat([a, v], dim=1))


def test_registries_name_their_known_entries():
    assert set(ATTENTIONS) >= {"mean", "self", "relation", "transformer"}
    assert set(FUSIONS) >= {"fbp", "concat"}
    assert ATTENTIONS["self"] is SelfAttention and ATTENTIONS["relation"] is RelationAttention
    with pytest.raises(ConfigError, match="known: mean, self, relation, transformer"):
        ATTENTIONS["nope"]
    with pytest.raises(TrainablesError, match="fbp, concat"):
        FUSIONS["sum"]


def test_registries_hold_exactly_the_declared_kinds():
    # trainables.config checks kinds against trainables.kinds (no torch); the classes must match.
    assert list(ATTENTIONS) == list(ATTENTION_KINDS)
    assert list(FUSIONS) == list(FUSION_KINDS)
    with pytest.raises(ConfigError, match="known: mean, self, relation, transformer"):
        ATTENTION_KINDS["nope"]
