"""Hermite-series activations and the dot-product kernels they induce.

With h_k = He_k / sqrt(k!) the orthonormal probabilists' Hermite polynomials
(E_{z~N(0,1)}[h_j h_k] = delta_jk) and phi(z) = sum_k a_k h_k(z), two unit-variance Gaussians
(u, v) with correlation rho satisfy E[h_j(u) h_k(v)] = delta_jk rho^k, so a one-hidden-layer
net f(x) = V phi(W x / sqrt(d)) / sqrt(m) (weights N(0, 1), no biases, inputs on the sphere
|x|^2 = d) has, as m -> infinity,

    NNGP   K(rho)     = sum_k a_k^2 rho^k,
    NTK    Theta(rho) = sum_k (k + 1) a_k^2 rho^k,

the NTK adding the first layer's rho E[phi'(u) phi'(v)] = sum_k k a_k^2 rho^k (h_k' =
sqrt(k) h_{k-1}) to the readout's K. Read backwards this is the paper's design rule: a target
sum_k b_k rho^k with every b_k >= 0 is the NNGP of a_k = sqrt(b_k) and the NTK of
a_k = sqrt(b_k / (k + 1)); the signs of the a_k are free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor, nn

from dlt_runner.core.errors import ConfigError, unknown_choice
from dlt_runner.papers.ntk_reverse.kernel_fit import PolynomialFit, power_series
from dlt_runner.theory.closed_form_kernels import Dual

KERNEL_KINDS = ("nngp", "ntk")


def _check_kind(kind: str) -> None:
    if kind not in KERNEL_KINDS:
        raise ConfigError(unknown_choice("kernel kind", kind, KERNEL_KINDS))


def hermite_polynomials(z: Tensor, degree: int) -> Tensor:
    """h_0(z), ..., h_degree(z) stacked on a new last axis: (..., degree + 1).

    The orthonormal recurrence h_{k+1} = (z h_k - sqrt(k) h_{k-1}) / sqrt(k + 1) is He_{k+1} =
    z He_k - k He_{k-1} divided by sqrt((k+1)!); it never forms k!, so it stays accurate at
    high degree, and it is differentiable in z.
    """
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    polynomials = [torch.ones_like(z)]
    if degree >= 1:
        polynomials.append(z)
    for k in range(1, degree):
        polynomials.append(
            (z * polynomials[k] - math.sqrt(k) * polynomials[k - 1]) / math.sqrt(k + 1)
        )
    return torch.stack(polynomials, dim=-1)


def monomial_coefficients(activation_coefficients: Tensor) -> Tensor:
    """c_j with sum_k a_k h_k(z) = sum_j c_j z^j, exactly (float64), from the recurrence."""
    a = torch.as_tensor(activation_coefficients, dtype=torch.float64).flatten()
    degree = len(a) - 1
    basis = torch.zeros(degree + 1, degree + 1, dtype=torch.float64)  # row k: h_k in powers of z
    basis[0, 0] = 1.0
    if degree >= 1:
        basis[1, 1] = 1.0
    for k in range(1, degree):
        shifted = torch.cat([basis.new_zeros(1), basis[k, :-1]])  # z h_k
        basis[k + 1] = (shifted - math.sqrt(k) * basis[k - 1]) / math.sqrt(k + 1)
    return a @ basis


def _horner(z: Tensor, coefficients: tuple[float, ...]) -> Tensor:
    """sum_j coefficients[j] z^j, in place on one fresh tensor (not recorded by autograd)."""
    if len(coefficients) == 1:
        return torch.full_like(z, coefficients[0])
    value = z * coefficients[-1]
    value.add_(coefficients[-2])
    for coefficient in reversed(coefficients[:-2]):
        value.mul_(z).add_(coefficient)
    return value


class _Polynomial(torch.autograd.Function):
    """p(z) with the derivative p'(z) written out: autograd then keeps only z, not one
    intermediate per degree, which makes the activation ~3x cheaper forward + backward. The
    backward calls this Function again, so higher derivatives work, and the generated vmap
    rule lets torch.func (`theory.entk.empirical_ntk`) differentiate through it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z: Tensor, coefficients: tuple[float, ...]) -> Tensor:
        return _horner(z, coefficients)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        z, coefficients = inputs
        ctx.save_for_backward(z)
        ctx.coefficients = coefficients

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        (z,) = ctx.saved_tensors
        derivative = tuple(k * c for k, c in enumerate(ctx.coefficients))[1:]
        if not derivative:
            return torch.zeros_like(grad_output), None
        return grad_output * _Polynomial.apply(z, derivative), None


class HermiteActivation(nn.Module):
    """phi(z) = sum_k a_k h_k(z), a pointwise activation given by its Hermite coefficients.

    The coefficients are a float64 buffer (not trained; it follows `.to(device)`). Up to degree
    `HORNER_MAX_DEGREE` phi is evaluated as a polynomial in z by Horner's rule with an explicit
    derivative (`_Polynomial`), ~3x faster than autograd through the Hermite recurrence (the
    activation is the costliest part of a training step); above it the monomial coefficients
    cancel badly in float32 (4e-2 relative error at degree 20 on |z| < 5), so the stable
    recurrence is used.
    """

    HORNER_MAX_DEGREE = 10

    def __init__(self, coefficients: Sequence[float] | Tensor) -> None:
        super().__init__()
        coefficients = torch.as_tensor(coefficients, dtype=torch.float64).flatten()
        if coefficients.numel() == 0:
            raise ValueError("a Hermite activation needs at least one coefficient")
        self.register_buffer("coefficients", coefficients.clone())
        self._refresh_monomial()
        self.register_load_state_dict_post_hook(lambda module, _: module._refresh_monomial())

    def _refresh_monomial(self) -> None:
        # Python floats: scalars in the Horner loop cost no device transfer per step.
        self._monomial = tuple(float(c) for c in monomial_coefficients(self.coefficients.cpu()))

    @property
    def degree(self) -> int:
        return self.coefficients.numel() - 1

    def forward(self, z: Tensor) -> Tensor:
        if self.degree > self.HORNER_MAX_DEGREE:
            return hermite_polynomials(z, self.degree) @ self.coefficients.to(z.dtype)
        return _Polynomial.apply(z, self._monomial)

    def kernel(self, rho: Tensor, kind: str = "ntk") -> Tensor:
        """This activation's one-hidden-layer NNGP or NTK at correlation rho."""
        return hermite_kernel(self.coefficients, rho, kind)

    def extra_repr(self) -> str:
        shown = ", ".join(f"{a:.3g}" for a in self.coefficients.tolist())
        return f"coefficients=[{shown}]"


def kernel_coefficients(activation_coefficients: Tensor, kind: str) -> Tensor:
    """Power-series coefficients b_k of the kernel of phi = sum_k a_k h_k (module docstring).

    'nngp': b_k = a_k^2;  'ntk': b_k = (k + 1) a_k^2.
    """
    _check_kind(kind)
    a = torch.as_tensor(activation_coefficients, dtype=torch.float64).flatten()
    b = a * a
    if kind == "ntk":
        b = b * torch.arange(1, len(a) + 1, dtype=b.dtype, device=b.device)
    return b


def activation_coefficients(
    kernel_coefficients: Tensor | Sequence[float],
    kind: str,
    signs: Sequence[float] | None = None,
    tolerance: float = 1e-12,
) -> Tensor:
    """The main theorem's design rule: a_k = s_k sqrt(b_k) ('nngp'), s_k sqrt(b_k/(k+1)) ('ntk').

    Args:
        kernel_coefficients: b_0, b_1, ... of the target K(rho) = sum_k b_k rho^k; all must be
            >= 0 (a dot-product kernel on every sphere, Schoenberg). Round-off down to
            -tolerance is clipped to 0.
        kind: realise the target as the net's 'nngp' or its 'ntk'.
        signs: s_k, +1 or -1 per coefficient (missing ones +1); free by the theorem. The
            official Fig. 1 demo uses [1, 1, -1, -1, 1, 1] for smoother-looking activations.
    """
    _check_kind(kind)
    b = torch.as_tensor(kernel_coefficients, dtype=torch.float64).flatten()
    if (b < -tolerance).any():
        raise ValueError(
            "kernel coefficients must be non-negative to be realisable; got "
            f"{[round(v, 6) for v in b.tolist()]}"
        )
    b = b.clamp_min(0.0)
    if kind == "ntk":
        b = b / torch.arange(1, len(b) + 1, dtype=b.dtype, device=b.device)
    a = b.sqrt()
    if signs is not None:
        signs = [float(s) for s in signs]
        if len(signs) > len(a) or any(s not in (-1.0, 1.0) for s in signs):
            raise ConfigError(f"signs must be at most {len(a)} values of +1 or -1; got {signs}")
        a[: len(signs)] *= torch.tensor(signs, dtype=a.dtype)
    return a


def hermite_kernel(activation_coefficients: Tensor, rho: Tensor, kind: str = "ntk") -> Tensor:
    """K(rho) or Theta(rho) of a one-hidden-layer net with phi = sum_k a_k h_k (float64)."""
    return power_series(kernel_coefficients(activation_coefficients, kind), rho)


def hermite_dual(activation_coefficients: Tensor) -> Dual:
    """The dual (E[phi(u) phi(v)], E[phi'(u) phi'(v)]) of phi = sum a_k h_k, in the form
    `theory.closed_form_kernels.deep_nngp_ntk` takes.

    Valid for unit variances only (inputs on the sphere, weight std 1, no bias), where
    E[phi phi] = sum a_k^2 rho^k and E[phi' phi'] = sum k a_k^2 rho^(k-1); so
    `deep_nngp_ntk(hermite_dual(a), rho, depth=1)` is the (NNGP, NTK) of `ShallowNet`.
    """
    a = torch.as_tensor(activation_coefficients, dtype=torch.float64).flatten()
    squared = a * a
    derivative = (squared * torch.arange(len(a), dtype=a.dtype))[1:]

    def dual(cov: Tensor, var1: Tensor, var2: Tensor) -> tuple[Tensor, Tensor]:
        for var in (var1, var2):
            var = torch.as_tensor(var, dtype=torch.float64)
            if not torch.allclose(var, torch.ones_like(var)):
                raise ValueError("hermite_dual needs unit variances (inputs on the sphere)")
        return power_series(squared, cov), power_series(derivative, cov)

    return dual


class TargetKernel(Protocol):
    """A dot-product kernel rho -> K(rho) on [-1, 1], and which kernel of a net it is."""

    kind: str

    def __call__(self, rho: Tensor) -> Tensor: ...


def mimic_activation(
    target: TargetKernel, fit: PolynomialFit, signs: Sequence[float] | None = None
) -> HermiteActivation:
    """The paper's recipe end to end: fit target(rho) by a non-negative
    polynomial, then apply the design rule for `target.kind`, giving the activation of a
    shallow mimic net."""
    result = fit(target)
    return HermiteActivation(activation_coefficients(result.coefficients, target.kind, signs))
