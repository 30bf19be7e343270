"""The scale-invariant MLP of the paper's recipe (Section 3) and the standard MLP baseline.

A network is scale invariant when f(c·θ; x) = f(θ; x) for every c > 0, jointly in all its
parameters. The paper's rules: every weight matrix feeds a parameter-free normalisation (no
biases, no trainable gains), and the output head is weight-normalised with a fixed temperature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NormalizedHead(nn.Module):
    """Weight-normalised linear head with a fixed temperature: logits = τ · W h / |W|_F."""

    def __init__(self, in_features: int, out_features: int, temperature: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Linear's default draw
        self.temperature = float(temperature)

    def forward(self, h: Tensor) -> Tensor:
        return self.temperature * F.linear(h, self.weight) / self.weight.norm()


class ScaleInvariantMLP(nn.Module):
    """[Linear (no bias) → LayerNorm (no affine) → ReLU] × depth, then a normalised head.

    Each hidden weight matrix is followed by a normalisation that removes its scale, and the
    head divides by its own norm, so the output is invariant to scaling all weights jointly
    (and to scaling each one separately).

    Args:
        in_features, hidden, out_features: widths.
        depth: number of hidden layers.
        temperature: τ of the head (fixed, not trained).
        eps: LayerNorm's variance floor. Invariance is exact only at 0; PyTorch's default 1e-5
            breaks it once a layer's pre-activation variance is that small, which an initial
            scale of 0.01 reaches, so the default here is 1e-12 (still guards a zero row).
    """

    def __init__(
        self,
        in_features: int,
        hidden: int,
        depth: int,
        out_features: int,
        temperature: float,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = int(in_features)
        for _ in range(int(depth)):
            layers += [
                nn.Linear(width, int(hidden), bias=False),
                nn.LayerNorm(int(hidden), eps=float(eps), elementwise_affine=False),
                nn.ReLU(),
            ]
            width = int(hidden)
        self.body = nn.Sequential(*layers)
        self.head = NormalizedHead(width, int(out_features), temperature)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class StandardMLP(nn.Module):
    """The baseline with the same widths: [Linear (with bias) → ReLU] × depth → Linear.

    PyTorch's default initialisation, no normalisation: its output changes with the scale of
    its parameters, so its training depends on the initial scale and the loss scale.
    """

    def __init__(self, in_features: int, hidden: int, depth: int, out_features: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = int(in_features)
        for _ in range(int(depth)):
            layers += [nn.Linear(width, int(hidden)), nn.ReLU()]
            width = int(hidden)
        layers.append(nn.Linear(width, int(out_features)))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def _layer_norm(x: Tensor, eps: float) -> Tensor:
    """LayerNorm without affine parameters (removes the scale of what feeds it)."""
    return F.layer_norm(x, x.shape[-1:], eps=eps)


class ScaleInvariantBlock(nn.Module):
    """Post-LN transformer block whose output is invariant to scaling its weights (reconstruction).

    The paper's rules (Section 3): no biases or gains, every branch's output is normalised before
    the residual sum, and the sum is re-normalised, h ← Norm(h + Norm(F(h))). Attention scores
    use L2-normalised queries and keys with a fixed temperature, so they do not grow with
    |W_q||W_k|; SIBERT's exact attention change is not reproduced here.
    """

    def __init__(self, width: int, heads: int, attention_temperature: float, eps: float) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        self.heads, self.eps = int(heads), float(eps)
        self.attention_temperature = float(attention_temperature)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        self.up = nn.Linear(width, 4 * width, bias=False)
        self.down = nn.Linear(4 * width, width, bias=False)

    def attention(self, h: Tensor) -> Tensor:
        batch, length, width = h.shape
        q, k, v = self.qkv(h).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        mixed = F.scaled_dot_product_attention(q, k, v, scale=self.attention_temperature)
        return self.out(mixed.transpose(1, 2).reshape(batch, length, width))

    def forward(self, h: Tensor) -> Tensor:
        h = _layer_norm(h + _layer_norm(self.attention(h), self.eps), self.eps)
        feed_forward = self.down(F.relu(_layer_norm(self.up(h), self.eps)))
        return _layer_norm(h + _layer_norm(feed_forward, self.eps), self.eps)


class ScaleInvariantTransformer(nn.Module):
    """SIBERT-like encoder (reconstruction): normalised embeddings, SI blocks, normalised head.

    Token and position embedding rows are L2-normalised before use (the paper's rule for
    embedding tables); the head is ``NormalizedHead`` applied to every position.
    Input: token ids (B, L); output: logits (B, L, vocab).
    """

    def __init__(
        self,
        vocab: int,
        length: int,
        width: int,
        depth: int,
        heads: int,
        temperature: float,
        attention_temperature: float = 8.0,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(int(vocab), int(width)))
        self.positions = nn.Parameter(torch.randn(int(length), int(width)))
        self.eps = float(eps)
        self.blocks = nn.ModuleList(
            ScaleInvariantBlock(int(width), int(heads), attention_temperature, eps)
            for _ in range(int(depth))
        )
        self.head = NormalizedHead(int(width), int(vocab), temperature)

    def forward(self, tokens: Tensor) -> Tensor:
        embedded = F.normalize(self.tokens[tokens], dim=-1) + F.normalize(
            self.positions[: tokens.shape[1]], dim=-1
        )
        h = _layer_norm(embedded, self.eps)
        for block in self.blocks:
            h = block(h)
        return self.head(h)


class StandardTransformer(nn.Module):
    """The baseline: a post-LN transformer encoder with biases and LayerNorm gains (PyTorch's)."""

    def __init__(self, vocab: int, length: int, width: int, depth: int, heads: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(int(vocab), int(width))
        self.positions = nn.Parameter(torch.randn(int(length), int(width)) * 0.02)
        layer = nn.TransformerEncoderLayer(
            int(width), int(heads), 4 * int(width), dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, int(depth), enable_nested_tensor=False)
        self.head = nn.Linear(int(width), int(vocab))

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.tokens(tokens) + self.positions[: tokens.shape[1]]
        return self.head(self.encoder(h))
