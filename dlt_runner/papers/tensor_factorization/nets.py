"""Shallow and deep CP factorisations for tensor completion (paper §3; Razin et al. 2021, §3).

A CP factorisation of an order-N tensor with R components is

    W = sum_{r=1..R} w_{1,r} ⊗ w_{2,r} ⊗ ... ⊗ w_{N,r},   w_{n,r} in R^{d_n},

the "shallow" tensor factorisation of Razin, Maman & Cohen (ICML 2021), a non-linear network
whose depth-1 case the present paper extends. The paper's deep version makes each factor vector
the output of a depth-L linear network; how the layers are shared could not be read from the
paper, so :class:`DeepCPFactorization` offers three forms (reconstruction):

- ``vector``: w_{n,r} = M_{n,r,L} ... M_{n,r,2} v_{n,r}, one product of d_n x d_n matrices per
  factor vector, as the same authors' deep Tucker code (Stef-hub/deeptuckerimplicit,
  ``TuckerLayer.py``) gives every column of every mode matrix its own product of square matrices;
- ``matrix``: A_n = M_{n,L} ... M_{n,2} U_n, layers shared by the R components of mode n;
- ``scalar``: w_{n,r} = s_{n,r,L} ... s_{n,r,2} v_{n,r}, the simplest form of the component-norm
  dynamics (each component's norm is multiplied by L - 1 trainable scalars).

Every parameter carries a leading axis of ``n_models`` independent initialisations: one module
trains several draws at once as one batched tensor program, and the gradient of each draw depends
on that draw alone (the loss is a sum over draws). Factor vectors are stored as (n_models, R, d_n).
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dlt_runner.core.errors import ConfigError, choose, positive_int

VARIANTS = ("vector", "matrix", "scalar")


def _gain(init: str, init_std: float, dim: int, depth: int) -> float:
    """Per-layer norm gain g of the initialisation protocol ``init`` (reconstruction).

    ``matched``: g = (sigma sqrt(d))^(1/L), entries N(0, g^2 / d), so a vector has norm ~ g, a
    d x d layer multiplies norms by ~ g, and the end-to-end factor vector has norm ~ sigma sqrt(d)
    at every depth (the shallow model with entries N(0, sigma^2)). ``per_layer``: every entry
    N(0, sigma^2), the usual deep matrix factorisation protocol, g = sigma sqrt(d) per layer.
    """
    end_to_end = init_std * math.sqrt(dim)
    return choose("init", init, {"matched": end_to_end ** (1.0 / depth), "per_layer": end_to_end})


class CPBase(nn.Module):
    """What every CP model shares: reconstruction, entries, component norms from factor vectors."""

    shape: tuple[int, ...]
    rank: int
    n_models: int

    def factor_vectors(self) -> list[Tensor]:
        """The end-to-end factor vectors w_{n,r}, one (n_models, R, d_n) tensor per mode n."""
        raise NotImplementedError

    def forward(self, factors: Sequence[Tensor] | None = None) -> Tensor:
        """The whole tensor W = sum_r w_{1,r} ⊗ ... ⊗ w_{N,r}, shape (n_models, d_1, ..., d_N)."""
        factors = self.factor_vectors() if factors is None else factors
        letters = string.ascii_lowercase[2 : 2 + len(factors)]
        inputs = ",".join(f"mr{letter}" for letter in letters)
        return torch.einsum(f"{inputs}->m{letters}", *factors)

    def entries(self, index: Tensor, factors: Sequence[Tensor] | None = None) -> Tensor:
        """W at the multi-indices ``index`` (B, N) without building W: shape (n_models, B)."""
        factors = self.factor_vectors() if factors is None else factors
        product = factors[0][:, :, index[:, 0]]
        for mode in range(1, len(factors)):
            product = product * factors[mode][:, :, index[:, mode]]
        return product.sum(dim=1)

    def component_norms(self, factors: Sequence[Tensor] | None = None) -> Tensor:
        """||w_{1,r} ⊗ ... ⊗ w_{N,r}|| = prod_n ||w_{n,r}||, shape (n_models, R).

        The quantity whose growth rate the paper bounds (Razin et al.'s ``CPComponentFroNorm``).
        """
        factors = self.factor_vectors() if factors is None else factors
        norms = factors[0].norm(dim=-1)
        for factor in factors[1:]:
            norms = norms * factor.norm(dim=-1)
        return norms


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(positive_int("model.net.shape entries", d) for d in shape)
    if not 2 <= len(shape) <= 20:
        raise ConfigError(f"model.net.shape must have 2 to 20 modes, got {list(shape)}")
    return shape


class CPFactorization(CPBase):
    """Shallow CP factorisation with R components (Razin et al. 2021, eq. (3)); entries N(0, s^2).

    Args:
        shape: (d_1, ..., d_N), the tensor's mode sizes.
        rank: R, the number of components (an upper bound on the CP rank it can express).
        init_std: s, the standard deviation of every factor entry.
        n_models: independent initialisations trained side by side.
    """

    def __init__(
        self, shape: Sequence[int], rank: int, init_std: float = 0.05, n_models: int = 1
    ) -> None:
        super().__init__()
        self.shape = _check_shape(shape)
        self.rank = positive_int("model.net.rank", rank)
        self.n_models = positive_int("model.net.n_models", n_models)
        self.factors = nn.ParameterList(
            nn.Parameter(torch.randn(self.n_models, self.rank, d) * init_std) for d in self.shape
        )

    def factor_vectors(self) -> list[Tensor]:
        return list(self.factors)


class DeepCPFactorization(CPBase):
    """CP factorisation whose factor vectors are outputs of depth-L linear networks (paper §3).

    At ``depth = 1`` it is :class:`CPFactorization` exactly: the same parameters, drawn from the
    same random stream in the same order. ``vectors`` are drawn first (mode by mode), then the
    layers, so the first layer of a deep model equals the shallow model's factors up to the gain.

    Args:
        shape, rank, n_models: as :class:`CPFactorization`.
        depth: L, the number of linear layers per factor vector (L - 1 of them over-parameterise).
        variant: ``vector`` (a product of square matrices per factor vector), ``matrix`` (layers
            shared by the components of a mode) or ``scalar`` (L - 1 scalars per factor vector).
        init: ``matched`` (end-to-end factor norms ~ init_std sqrt(d) at every depth) or
            ``per_layer`` (every entry N(0, init_std^2)); scalar layers start at the gain g.
        init_std: sigma of the protocol.
    """

    def __init__(
        self,
        shape: Sequence[int],
        rank: int,
        depth: int = 3,
        variant: str = "vector",
        init: str = "matched",
        init_std: float = 0.5,
        n_models: int = 1,
    ) -> None:
        super().__init__()
        self.shape = _check_shape(shape)
        self.rank = positive_int("model.net.rank", rank)
        self.depth = positive_int("model.net.depth", depth)
        self.n_models = positive_int("model.net.n_models", n_models)
        self.variant = choose("variant", variant, {v: v for v in VARIANTS})
        gains = [_gain(init, init_std, d, self.depth) for d in self.shape]
        models, hidden = self.n_models, self.depth - 1
        self.vectors = nn.ParameterList(
            nn.Parameter(torch.randn(models, self.rank, d) * (g / math.sqrt(d)))
            for d, g in zip(self.shape, gains, strict=True)
        )
        self.layers = nn.ParameterList()
        if hidden == 0:
            return
        for d, g in zip(self.shape, gains, strict=True):
            if self.variant == "vector":
                layer = torch.randn(models, hidden, self.rank, d, d) * (g / math.sqrt(d))
            elif self.variant == "matrix":
                layer = torch.randn(models, hidden, d, d) * (g / math.sqrt(d))
            else:
                layer = torch.full((models, hidden, self.rank), g)
            self.layers.append(nn.Parameter(layer))

    def factor_vectors(self) -> list[Tensor]:
        if self.depth == 1:
            return list(self.vectors)
        factors = []
        for vectors, layers in zip(self.vectors, self.layers, strict=True):
            w = vectors
            for layer in range(self.depth - 1):  # M_2 acts first, M_L last
                if self.variant == "vector":
                    w = torch.einsum("mrij,mrj->mri", layers[:, layer], w)
                elif self.variant == "matrix":
                    w = torch.einsum("mij,mrj->mri", layers[:, layer], w)
                else:
                    w = w * layers[:, layer, :, None]
            factors.append(w)
        return factors
