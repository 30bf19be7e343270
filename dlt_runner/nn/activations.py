"""Pointwise activations picked by the name a config types (`activation: tanh`).

`erf` is here because the infinite-width kernels of erf nets have a closed form
(Williams 1997; `theory.closed_form_kernels.erf_nngp_ntk`), which the reverse-engineered
kernels of Simon et al. 2022 are compared against.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dlt_runner.core.errors import choose


class Erf(nn.Module):
    """phi(z) = erf(z): a sigmoid-like activation whose NNGP/NTK are closed-form."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.special.erf(x)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "erf": Erf,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}


def get_activation(name_or_module: str | nn.Module) -> nn.Module:
    """A fresh activation module for a registry name, or the given module unchanged.

    Passing a module lets a paper plug in its own activation (e.g. the Hermite polynomial of
    Simon et al. 2022), including one that Hydra instantiated from a nested `_target_`.
    """
    if isinstance(name_or_module, nn.Module):
        return name_or_module
    return choose("activation", name_or_module, ACTIVATIONS)()
