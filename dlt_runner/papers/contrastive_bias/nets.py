"""Representations of the paper's experiments: trained encoders and constructed minimisers.

Hypercube (paper §3, Example 1, Table 1):

- :class:`LinearEncoder`, f(x) = W x: the linear class F_phi of Corollary 4.2, for which
  approximately minimising the contrastive loss guarantees transfer;
- :class:`MLPEncoder`: a ReLU MLP, the class whose minimisers transfer worse (Table 1);
- :class:`PerfectEncoder`, f(x) = sign(x): augmentation-invariant, one point per input (Table 1,
  row "exists f");
- :class:`SpuriousEncoder`, g = sigma ∘ f with the involution sigma of :func:`involution`:
  the same loss as f in distribution, chance-level linear transfer (Table 1, row "exists g";
  reconstruction of the paper's "permute instance identities" construction, Appendix C).

No projection head on the hypercube: the loss is applied to the representation itself, as in
the theory. Images (paper §5, Appendix D.2): :class:`SimCLREncoder`, a backbone (a CIFAR ResNet,
or the :class:`MLPMixer` the paper contrasts it with) followed by the projection MLP (one hidden
layer of 2048 with batch norm and ReLU, output 1024); the probed representation is the
projector's output, as in the paper.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dlt_runner.core.errors import positive_int


class LinearEncoder(nn.Module):
    """f(x) = W x, W of shape (d, D), no bias (the linear class F_phi, paper §4.2)."""

    def __init__(self, input_dim: int, rep_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(
            positive_int("input_dim", input_dim), positive_int("rep_dim", rep_dim), bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class MLPEncoder(nn.Module):
    """ReLU MLP D -> width -> ... -> width -> d with ``depth`` hidden layers (paper Table 1;
    width and depth are a reconstruction)."""

    def __init__(self, input_dim: int, rep_dim: int, width: int = 256, depth: int = 2) -> None:
        super().__init__()
        sizes = [positive_int("input_dim", input_dim)]
        sizes += [positive_int("width", width)] * positive_int("depth", depth)
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], positive_int("rep_dim", rep_dim)))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def _sign(x: Tensor) -> Tensor:
    # Ties (measure zero here) go to +1 so that the result is always on the hypercube.
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def involution(s: Tensor, k: int, mixing: Tensor) -> Tensor:
    """sigma(s) = (s_{1:k} ⊙ h(s_{k+1:D}), s_{k+1:D}) with h(u) = sign(R u) in {-1, +1}^k.

    ``mixing`` is R, shape (k, D - k). sigma leaves the last D - k coordinates alone, so h is
    the same before and after, and h ⊙ h = 1 makes sigma its own inverse: a bijection of the
    hypercube, hence it maps the uniform distribution to itself (reconstruction of the
    identity permutation of the paper's Lemma 4.1 proof, Appendix C).
    """
    head, tail = s[:, :k], s[:, k:]
    flips = _sign(tail @ mixing.T.to(s.dtype))
    return torch.cat([head * flips, tail], dim=1)


class PerfectEncoder(nn.Module):
    """f(x) = sign(x) (paper Table 1, "exists f"): invariant to the augmentation, which never
    changes a sign, and the label is linear in f(x). No parameters."""

    def forward(self, x: Tensor) -> Tensor:
        return _sign(x)


class SpuriousEncoder(nn.Module):
    """g(x) = sigma(sign(x)) (paper Table 1, "exists g"; reconstruction).

    Augmentation-invariant like f, and g's loss on a batch X equals f's on sigma(X), so over
    uniform inputs the two losses have one distribution. The label, linear in x_{1:k} =
    g_{1:k} ⊙ h(g_{k+1:D}), is a sign-scrambled function of g: a linear probe is at chance.

    Args:
        input_dim: D.
        k: the label's coordinates.
        seed: seeds R ~ N(0, 1)^{k x (D - k)}.
    """

    def __init__(self, input_dim: int, k: int, seed: int = 0) -> None:
        super().__init__()
        self.k = positive_int("k", k)
        spurious = positive_int("input_dim", input_dim) - self.k
        if spurious < 1:
            raise ValueError(f"SpuriousEncoder needs k < input_dim, got k={k}, D={input_dim}")
        generator = torch.Generator().manual_seed(int(seed))
        self.register_buffer("mixing", torch.randn(self.k, spurious, generator=generator))

    def forward(self, x: Tensor) -> Tensor:
        return involution(_sign(x), self.k, self.mixing)


class MixerBlock(nn.Module):
    """Token mixing then channel mixing, each a pre-norm residual MLP (Tolstikhin et al. 2021,
    "MLP-Mixer", §2, eq. 1)."""

    def __init__(self, tokens: int, channels: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.token_norm = nn.LayerNorm(channels)
        self.token_mlp = nn.Sequential(
            nn.Linear(tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, tokens)
        )
        self.channel_norm = nn.LayerNorm(channels)
        self.channel_mlp = nn.Sequential(
            nn.Linear(channels, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, channels)
        )

    def forward(self, x: Tensor) -> Tensor:  # x: (B, tokens, channels)
        x = x + self.token_mlp(self.token_norm(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.channel_norm(x))


class MLPMixer(nn.Module):
    """MLP-Mixer backbone (Tolstikhin et al. 2021): non-overlapping patches embedded linearly,
    ``depth`` :class:`MixerBlock` s, layer norm and a mean over tokens. One of the architectures
    the paper compares with ResNet on CIFAR-10 (§5.1); its sizes here are a reconstruction.
    ``features(x)`` is the pooled vector (``n_features`` = ``channels``).
    """

    def __init__(
        self,
        image_size: int = 32,
        patch_size: int = 4,
        in_channels: int = 3,
        channels: int = 256,
        depth: int = 8,
        token_hidden: int = 128,
        channel_hidden: int = 1024,
    ) -> None:
        super().__init__()
        patch = positive_int("patch_size", patch_size)
        if positive_int("image_size", image_size) % patch:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch}")
        tokens = (image_size // patch) ** 2
        self.n_features = positive_int("channels", channels)
        self.embed = nn.Conv2d(in_channels, channels, kernel_size=patch, stride=patch)
        self.blocks = nn.Sequential(
            *(
                MixerBlock(tokens, channels, token_hidden, channel_hidden)
                for _ in range(positive_int("depth", depth))
            )
        )
        self.norm = nn.LayerNorm(channels)

    def features(self, x: Tensor) -> Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # (B, tokens, channels)
        return self.norm(self.blocks(tokens)).mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


class ProjectionMLP(nn.Module):
    """SimCLR projector of the paper's image models (Appendix D.2): Linear(n, 2048) - BatchNorm
    - ReLU - Linear(2048, 1024)."""

    def __init__(self, in_features: int, hidden: int = 2048, out_features: int = 1024) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(positive_int("in_features", in_features), positive_int("hidden", hidden)),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, positive_int("out_features", out_features)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class SimCLREncoder(nn.Module):
    """backbone features -> :class:`ProjectionMLP` (paper Appendix D.2).

    ``backbone`` is any module with ``features(x)`` and ``n_features`` (e.g.
    :class:`dlt_runner.nn.resnet.ResNet`, whose classifier is then unused) or a plain module
    whose output is the feature vector (give ``n_features``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        hidden: int = 2048,
        out_features: int = 1024,
        n_features: int | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        features = n_features if n_features is not None else getattr(backbone, "n_features", None)
        if features is None:
            raise ValueError("SimCLREncoder: the backbone has no n_features; pass n_features")
        self.projector = ProjectionMLP(int(features), hidden, out_features)

    def forward(self, x: Tensor) -> Tensor:
        features = getattr(self.backbone, "features", self.backbone)
        return self.projector(features(x))
