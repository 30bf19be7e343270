"""Random orthogonal transforms and the equivariance error of a geometric model.

A model ``fn(x, v, *extras)`` maps positions x ``(..., D)`` and velocities v ``(..., D)`` (plus
invariant extras such as charges) to positions. It is E(D)-equivariant if, for every orthogonal
Q and translation t,

    fn(x Q^T + t, v Q^T, *extras) = fn(x, v, *extras) Q^T + t,

and SE(D)-equivariant if this holds for the proper rotations (det Q = +1) only. Velocities are
directions, so they rotate but are not translated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def random_orthogonal(
    generator: torch.Generator, dtype: torch.dtype = torch.float64, dim: int = 3
) -> Tensor:
    """A Haar-distributed orthogonal ``(dim, dim)`` matrix (either determinant).

    QR of a Gaussian matrix, with the columns' signs fixed by the signs of R's diagonal: without
    that fix the distribution is not Haar (Mezzadri 2007, "How to generate random matrices from
    the classical compact groups").
    """
    gaussian = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.to(dtype)


def random_rotation(
    generator: torch.Generator, dtype: torch.dtype = torch.float64, dim: int = 3
) -> Tensor:
    """A Haar-distributed proper rotation, ``(dim, dim)`` with det = +1.

    A Haar orthogonal matrix with det = -1, times a fixed reflection, is Haar on the other coset,
    so flipping one column whenever det = -1 gives the Haar measure on SO(dim).
    """
    q = random_orthogonal(generator, torch.float64, dim)
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype)


def reflection(
    generator: torch.Generator, dtype: torch.dtype = torch.float64, dim: int = 3
) -> Tensor:
    """A Householder reflection I - 2 u u^T through a uniformly random plane (det = -1)."""
    u = torch.randn(dim, generator=generator, dtype=torch.float64)
    u = u / torch.linalg.vector_norm(u)
    return (torch.eye(dim, dtype=torch.float64) - 2 * torch.outer(u, u)).to(dtype)


def equivariance_error(
    fn: Callable[..., Tensor],
    x: Tensor,
    v: Tensor,
    extras: Sequence[Tensor] = (),
    rotation: Tensor | None = None,
    translation: Tensor | None = None,
    translate_output: bool = True,
) -> float:
    """Relative equivariance error of ``fn`` under x -> x Q^T + t, v -> v Q^T:

        max |fn(x Q^T + t, v Q^T) - (fn(x, v) Q^T + t)| / max |fn(x, v)|.

    ``rotation`` Q may be any orthogonal matrix: a proper rotation tests SE(D), a reflection from
    :func:`reflection` tests the improper part of E(D). ``translation`` t has shape ``(D,)`` (zero
    when None). Set ``translate_output=False`` for models whose output is a direction (a force,
    a velocity) rather than a position. Q and t are cast to x's dtype, so in float32 the error
    measures the model's round-off, about 1e-7.
    """
    dim = x.shape[-1]
    q = torch.eye(dim) if rotation is None else rotation
    q = q.to(dtype=x.dtype, device=x.device)
    t = torch.zeros(dim) if translation is None else translation
    t = t.to(dtype=x.dtype, device=x.device)
    out = fn(x, v, *extras)
    out_transformed = fn(x @ q.T + t, v @ q.T, *extras)
    expected = out @ q.T + (t if translate_output else 0)
    scale = out.abs().max().clamp_min(torch.finfo(out.dtype).tiny)
    return ((out_transformed - expected).abs().max() / scale).item()
