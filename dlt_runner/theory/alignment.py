"""Kernel-target alignment of a kernel with the labels (Cristianini et al. 2002)."""

from __future__ import annotations

import torch
from torch import Tensor


def kernel_alignment(K: Tensor, Y: Tensor, *, centered: bool = False, eps: float = 1e-12) -> float:
    """A(K, Y) = <K, Y Y^T>_F / (||K||_F ||Y Y^T||_F) (Cristianini et al. 2002).

    Y is (n,) or (n, C). `centered=True` centres both K and Y Y^T with H = I - 11^T/n
    (Cortes et al. 2012); Lou et al. 2022 instead centre the one-hot Y itself before calling.
    Computed in float64 after dividing K and Y Y^T by their largest entry, so tiny kernels
    (vanishing gradients of early layers) do not underflow; a zero kernel gives 0, not NaN.
    """
    K = K.double()
    Y = Y.double().reshape(len(Y), -1)
    target = Y @ Y.T
    if centered:
        K, target = _center(K), _center(target)
    K, target = _max_normalized(K), _max_normalized(target)
    denominator = torch.linalg.norm(K) * torch.linalg.norm(target)
    return float((K * target).sum() / denominator.clamp_min(eps))


def _center(K: Tensor) -> Tensor:
    """H K H with H = I - 11^T / n."""
    K = K - K.mean(0, keepdim=True)
    return K - K.mean(1, keepdim=True)


def _max_normalized(K: Tensor) -> Tensor:
    scale = K.abs().max()
    return K / scale if scale > 0 else K
