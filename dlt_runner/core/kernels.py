"""Neural kernels and kernel ridge regression, as pure functions.

Shared by papers 02 (ntk_reverse), 04 (informed_wide), 07 (signal_prop_tka) and 14 (gcv_rmt):

1. `empirical_ntk`: Theta(x, x') = J(x) J(x')^T from per-sample parameter Jacobians
   (torch.func `functional_call` + `vmap(jacrev)`), whole-network or per layer, chunked.
2. `relu_nngp_ntk`, `erf_nngp_ntk` (and the generic `deep_nngp_ntk`): infinite-width NNGP
   and NTK of deep fully-connected nets in the NTK parameterisation, with the conventions
   of neural-tangents' `stax.Dense(W_std, b_std)` + `stax.Relu()` / `stax.Erf()`.
   `empirical_nngp` is their finite-width counterpart.
3. `kernel_alignment`: kernel-target alignment (paper 07 §1).
4. `kernel_ridge_predict` and `SpectralKernelRidge`: kernel ridge regression with the
   (K + n lambda I)^{-1} scale convention of paper 14 §2; the latter solves a whole ridge
   grid from one `eigh`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from numbers import Real

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

OUTPUTS = ("sum", "trace", "full")

# --------------------------------------------------------------------------------------------
# 1. Empirical NTK
# --------------------------------------------------------------------------------------------


def empirical_ntk(
    model: nn.Module,
    x1: Tensor,
    x2: Tensor | None = None,
    *,
    output: str | int = "sum",
    per_layer: bool = False,
    parameters: Iterable[str] | None = None,
    chunk_size: int | None = None,
    block_bytes: int = 2**27,
    dtype: torch.dtype | None = None,
) -> Tensor | dict[str, Tensor]:
    """Empirical neural tangent kernel Theta(x, x') = sum_p df(x)/dp df(x')/dp.

    Args:
        model: maps a batch (b, ...) to outputs (b, C) or (b,); evaluated per sample, in
            whatever train/eval mode it is in (use eval mode for batch-norm nets).
        x1, x2: inputs (n1, ...) and (n2, ...); x2=None means x2 = x1 (then only the upper
            block triangle is computed and the kernel is exactly symmetric).
        output: which kernel of the C outputs f_c:
            'sum'   -> (n1, n2), kernel of the scalar sum_c f_c (paper 14: "logit sum");
            'trace' -> (n1, n2), sum_c <df_c(x), df_c(x')> (paper 07: summed over logits);
            'full'  -> (n1, n2, C, C), entry [i, j, a, b] = <df_a(x_i), df_b(x'_j)>;
            an int c -> (n1, n2), kernel of the single output f_c (paper 02: one logit).
            So 'sum' = full.sum((2, 3)) and 'trace' = full.diagonal(0, 2, 3).sum(-1).
        per_layer: if True, return {module name: kernel} with one kernel per module that
            owns differentiated parameters (e.g. 'layers.0' = its weight and bias), in
            parameter order; the kernels sum to the whole-network kernel.
        parameters: names (as in `model.named_parameters()`) to differentiate; default all
            parameters with requires_grad. E.g. only the weights for paper 07's J_l = df/dW_l.
        chunk_size: samples per Jacobian block; None picks the most whose Jacobian
            (chunk_size * C' * P * itemsize, C' = C for 'trace'/'full' and 1 otherwise,
            P = number of differentiated parameters) fits in `block_bytes`. Peak memory is
            a few such blocks (rows, columns, autograd intermediates; ~4 measured on CPU)
            plus the kernel. Column blocks are recomputed for each row block, not stored.
        block_bytes: the Jacobian-block budget used when chunk_size is None (128 MiB).
        dtype: compute in this dtype (e.g. torch.float64) without touching the model.

    Returns:
        The kernel (dtype of the computation, device of the model), or a dict of them.
    """
    if not (output in OUTPUTS or (isinstance(output, int) and not isinstance(output, bool))):
        raise ValueError(
            f"unknown output {output!r}; choose one of: {', '.join(OUTPUTS)}, or an int index"
        )
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size}")
    params, frozen = _split_parameters(model, parameters, dtype)
    reference = next(iter(params.values()))
    symmetric = x2 is None
    x1 = _match(x1, reference)
    x2 = x1 if symmetric else _match(x2, reference)
    groups = _parameter_groups(params) if per_layer else {"": list(params)}
    jacobian = _per_sample_jacobian(model, params, frozen, output)

    n1, n2 = len(x1), len(x2)
    step = chunk_size or _samples_per_block(model, params, frozen, x1, output, block_bytes)
    kernels: dict[str, Tensor] = {}
    for i in range(0, n1, step):
        rows = jacobian(x1[i : i + step])
        for j in range(i if symmetric else 0, n2, step):
            diagonal_block = symmetric and j == i
            cols = rows if diagonal_block else jacobian(x2[j : j + step])
            for group, names in groups.items():
                block = sum(_contract(rows[name], cols[name], output) for name in names)
                if diagonal_block:  # exact symmetry, not just up to round-off
                    block = (block + _swap_points(block, output)) / 2
                if group not in kernels:
                    kernels[group] = block.new_zeros((n1, n2, *block.shape[2:]))
                kernels[group][i : i + step, j : j + step] = block
                if symmetric and j != i:
                    kernels[group][j : j + step, i : i + step] = _swap_points(block, output)
    return kernels if per_layer else kernels[""]


def _split_parameters(
    model: nn.Module, names: Iterable[str] | None, dtype: torch.dtype | None
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(parameters to differentiate, everything else functional_call needs), detached."""
    all_params = dict(model.named_parameters())
    if names is None:
        chosen = [name for name, p in all_params.items() if p.requires_grad]
    else:
        chosen = list(names)
        unknown = [name for name in chosen if name not in all_params]
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown}; choose from: {', '.join(all_params)}"
            )
    if not chosen:
        raise ValueError("no parameters to differentiate: the kernel would be empty")

    def cast(t: Tensor) -> Tensor:
        t = t.detach()
        return t.to(dtype) if dtype is not None and t.is_floating_point() else t

    params = {name: cast(all_params[name]) for name in chosen}
    frozen: dict[str, Tensor] = {}
    if dtype is not None:  # otherwise functional_call falls back to the module's own tensors
        frozen = {name: cast(p) for name, p in all_params.items() if name not in params}
        frozen.update({name: cast(b) for name, b in model.named_buffers()})
    return params, frozen


def _samples_per_block(
    model: nn.Module,
    params: dict[str, Tensor],
    frozen: dict[str, Tensor],
    x: Tensor,
    output: str | int,
    block_bytes: int,
) -> int:
    """How many per-sample Jacobians fit in block_bytes (at least 1)."""
    n_outputs = 1
    if output in ("trace", "full"):
        with torch.no_grad():
            n_outputs = functional_call(model, (params, frozen), (x[:1],)).numel()
    reference = next(iter(params.values()))
    bytes_per_sample = n_outputs * sum(p.numel() for p in params.values()) * reference.itemsize
    return max(1, block_bytes // bytes_per_sample)


def _match(x: Tensor, reference: Tensor) -> Tensor:
    """Inputs on the parameters' device, floating inputs in the parameters' dtype."""
    x = x.to(reference.device)
    return x.to(reference.dtype) if x.is_floating_point() else x


def _parameter_groups(params: dict[str, Tensor]) -> dict[str, list[str]]:
    """Parameter names grouped by owning module: 'layers.0.weight' -> 'layers.0'."""
    groups: dict[str, list[str]] = {}
    for name in params:
        module_name = name.rpartition(".")[0] or name
        groups.setdefault(module_name, []).append(name)
    return groups


def _per_sample_jacobian(
    model: nn.Module, params: dict[str, Tensor], frozen: dict[str, Tensor], output: str | int
) -> Callable[[Tensor], dict[str, Tensor]]:
    """x (b, ...) -> {name: (b, C', P_name)} per-sample Jacobians of the selected outputs."""

    def selected_outputs(p: dict[str, Tensor], x: Tensor) -> Tensor:
        out = functional_call(model, (p, frozen), (x.unsqueeze(0),)).reshape(-1)
        if output == "sum":
            return out.sum().unsqueeze(0)
        if isinstance(output, int):
            return out[output].unsqueeze(0)
        return out

    batched = vmap(jacrev(selected_outputs), in_dims=(None, 0))

    def jacobian(x: Tensor) -> dict[str, Tensor]:
        return {name: j.flatten(2) for name, j in batched(params, x).items()}

    return jacobian


def _contract(rows: Tensor, cols: Tensor, output: str | int) -> Tensor:
    """Kernel block from Jacobian blocks (b1, C', P) and (b2, C', P)."""
    if output == "full":
        return torch.einsum("iap,jbp->ijab", rows, cols)
    return torch.einsum("icp,jcp->ij", rows, cols)


def _swap_points(block: Tensor, output: str | int) -> Tensor:
    """K(x', x) from K(x, x'): transpose the points (and the output pair for 'full')."""
    return block.permute(1, 0, 3, 2) if output == "full" else block.T


# --------------------------------------------------------------------------------------------
# 2. Infinite-width kernels of deep fully-connected nets
# --------------------------------------------------------------------------------------------

Dual = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


def input_covariance(x1: Tensor, x2: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(x1 x2^T / d, |x1|^2 / d as a column, |x2|^2 / d as a row), in float64.

    The input kernel of neural-tangents; pass it on as `relu_nngp_ntk(*input_covariance(x))`.
    On the sphere |x|^2 = d (paper 02 §2) the first is the correlation rho and the others 1.
    """
    x1 = x1.double().flatten(1)
    x2 = x1 if x2 is None else x2.double().flatten(1)
    d = x1.shape[1]
    return x1 @ x2.T / d, (x1 * x1).sum(1, keepdim=True) / d, (x2 * x2).sum(1)[None, :] / d


def arccos_k1(rho: Tensor | float) -> Tensor:
    """k1(rho) = (sqrt(1 - rho^2) + (pi - arccos rho) rho) / pi (paper 02 §2).

    Equals 2 E[relu(u) relu(v)] for unit-variance (u, v) with correlation rho.
    """
    rho = torch.as_tensor(rho).clamp(-1.0, 1.0)
    return (torch.sqrt(1.0 - rho * rho) + (math.pi - torch.arccos(rho)) * rho) / math.pi


def arccos_k0(rho: Tensor | float) -> Tensor:
    """k0(rho) = (pi - arccos rho) / pi = 2 E[relu'(u) relu'(v)] = dk1/drho (paper 02 §2)."""
    return (math.pi - torch.arccos(torch.as_tensor(rho).clamp(-1.0, 1.0))) / math.pi


def relu_dual(cov: Tensor, var1: Tensor, var2: Tensor) -> tuple[Tensor, Tensor]:
    """(E[relu(u) relu(v)], E[relu'(u) relu'(v)]) for (u, v) ~ N(0, [[var1, cov], [cov, var2]]).

    Arc-cosine kernels of Cho & Saul 2009: sqrt(var1 var2) k1(rho) / 2 and k0(rho) / 2.
    """
    scale = torch.sqrt(var1 * var2)
    rho = cov / scale.clamp_min(torch.finfo(scale.dtype).tiny)
    return scale * arccos_k1(rho) / 2, arccos_k0(rho) / 2


def erf_dual(cov: Tensor, var1: Tensor, var2: Tensor) -> tuple[Tensor, Tensor]:
    """(E[erf(u) erf(v)], E[erf'(u) erf'(v)]) for (u, v) ~ N(0, [[var1, cov], [cov, var2]]).

    Williams 1997: (2/pi) arcsin(2 cov / sqrt((1 + 2 var1)(1 + 2 var2))), and
    (4/pi) / sqrt((1 + 2 var1)(1 + 2 var2) - 4 cov^2) (as in neural-tangents' stax.Erf).
    """
    denominator = (1 + 2 * var1) * (1 + 2 * var2)
    nngp = 2 / math.pi * torch.arcsin((2 * cov / torch.sqrt(denominator)).clamp(-1.0, 1.0))
    return nngp, 4 / math.pi / torch.sqrt(denominator - 4 * cov * cov)


def deep_nngp_ntk(
    dual: Dual,
    cov: Tensor | float,
    var1: Tensor | float = 1.0,
    var2: Tensor | float = 1.0,
    *,
    depth: int,
    weight_std: float | Sequence[float] = 1.0,
    bias_std: float | Sequence[float] = 0.0,
) -> tuple[Tensor, Tensor]:
    """(NNGP, NTK) of one output of an NTK-parameterised MLP with `depth` hidden layers.

    The net is `MLP([d, m, ..., m, C], activation, 'ntk', weight_std, bias_std)` with
    m -> infinity; the input kernel is (cov, var1, var2) = `input_covariance(x1, x2)`, or
    (rho, 1, 1) on the sphere. With sigma_w, sigma_b of linear layer l (0..depth, scalar or
    list) the recursion of neural-tangents' Dense/activation layers is
        Sigma_0 = sigma_w0^2 cov + sigma_b0^2,  Theta_0 = Sigma_0,
        Sigma_l = sigma_wl^2 E[phi phi](Sigma_{l-1}) + sigma_bl^2,
        Theta_l = Sigma_l + sigma_wl^2 E[phi' phi'](Sigma_{l-1}) Theta_{l-1},
    with the variances propagated alongside; it returns (Sigma_depth, Theta_depth).
    `dual(cov, var1, var2)` returns (E[phi(u) phi(v)], E[phi'(u) phi'(v)]); var1, var2 must
    broadcast against cov. Computed in float64.
    """
    n_linear = depth + 1
    weight_vars = [w * w for w in _per_linear_layer(weight_std, n_linear, "weight_std")]
    bias_vars = [b * b for b in _per_linear_layer(bias_std, n_linear, "bias_std")]
    cov, var1, var2 = (torch.as_tensor(t, dtype=torch.float64) for t in (cov, var1, var2))

    nngp = weight_vars[0] * cov + bias_vars[0]
    var1 = weight_vars[0] * var1 + bias_vars[0]
    var2 = weight_vars[0] * var2 + bias_vars[0]
    ntk = nngp
    for weight_var, bias_var in zip(weight_vars[1:], bias_vars[1:], strict=True):
        activation_cov, derivative_cov = dual(nngp, var1, var2)
        nngp = weight_var * activation_cov + bias_var
        ntk = nngp + weight_var * derivative_cov * ntk
        var1 = weight_var * dual(var1, var1, var1)[0] + bias_var
        var2 = weight_var * dual(var2, var2, var2)[0] + bias_var
    return nngp, ntk


def relu_nngp_ntk(
    cov: Tensor | float,
    var1: Tensor | float = 1.0,
    var2: Tensor | float = 1.0,
    *,
    depth: int,
    weight_std: float | Sequence[float] = 1.0,
    bias_std: float | Sequence[float] = 0.0,
) -> tuple[Tensor, Tensor]:
    """(NNGP, NTK) of a deep ReLU net; see `deep_nngp_ntk`.

    Paper 02 §2's He-init bias-free form (Sigma_l = k1(Sigma_{l-1}),
    Theta_l = Sigma_l + Theta_{l-1} k0(Sigma_{l-1}), Sigma_0 = Theta_0 = rho) is
    weight_std = [1] + [sqrt(2)] * depth, bias_std = 0 on the sphere: `relu_arccos_nngp_ntk`.
    """
    return deep_nngp_ntk(
        relu_dual, cov, var1, var2, depth=depth, weight_std=weight_std, bias_std=bias_std
    )


def erf_nngp_ntk(
    cov: Tensor | float,
    var1: Tensor | float = 1.0,
    var2: Tensor | float = 1.0,
    *,
    depth: int,
    weight_std: float | Sequence[float] = 1.0,
    bias_std: float | Sequence[float] = 0.0,
) -> tuple[Tensor, Tensor]:
    """(NNGP, NTK) of a deep erf net; see `deep_nngp_ntk`."""
    return deep_nngp_ntk(
        erf_dual, cov, var1, var2, depth=depth, weight_std=weight_std, bias_std=bias_std
    )


def relu_arccos_nngp_ntk(rho: Tensor | float, depth: int) -> tuple[Tensor, Tensor]:
    """Paper 02 §2 arc-cosine recursion, written as in the paper (He init, no biases).

    Sigma_0 = Theta_0 = rho, Sigma_l = k1(Sigma_{l-1}),
    Theta_l = Sigma_l + Theta_{l-1} k0(Sigma_{l-1}); returns (Sigma_depth, Theta_depth).
    """
    nngp = ntk = torch.as_tensor(rho, dtype=torch.float64)
    for _ in range(depth):
        nngp, ntk = arccos_k1(nngp), arccos_k1(nngp) + ntk * arccos_k0(nngp)
    return nngp, ntk


def empirical_nngp(
    features1: Tensor,
    features2: Tensor | None = None,
    *,
    weight_std: float = 1.0,
    bias_std: float = 0.0,
) -> Tensor:
    """E over the readout init of f(x) f(x') given the penultimate features (e.g. `MLP.features`).

    sigma_w^2 <phi(x), phi(x')> / m + sigma_b^2, with sigma_w, sigma_b the readout's scales
    and m the feature width: the finite-width estimate of the NNGP (either parameterisation).
    """
    features2 = features1 if features2 is None else features2
    width = features1.shape[-1]
    return weight_std**2 * (features1 @ features2.T) / width + bias_std**2


def _per_linear_layer(value: float | Sequence[float], n_layers: int, name: str) -> list[float]:
    if isinstance(value, Real):
        return [float(value)] * n_layers
    values = [float(v) for v in value]
    if len(values) != n_layers:
        raise ValueError(
            f"{name} has {len(values)} entries but depth {n_layers - 1} needs {n_layers} "
            "(one per linear layer, readout included)"
        )
    return values


# --------------------------------------------------------------------------------------------
# 3. Kernel-target alignment
# --------------------------------------------------------------------------------------------


def kernel_alignment(K: Tensor, Y: Tensor, *, centered: bool = False, eps: float = 1e-12) -> float:
    """A(K, Y) = <K, Y Y^T>_F / (||K||_F ||Y Y^T||_F) (paper 07 §1; Cristianini et al. 2002).

    Y is (n,) or (n, C). `centered=True` centres both K and Y Y^T with H = I - 11^T/n
    (Cortes et al. 2012); paper 07 instead centres the one-hot Y itself before calling.
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


# --------------------------------------------------------------------------------------------
# 4. Kernel ridge regression
# --------------------------------------------------------------------------------------------


def kernel_ridge_predict(K_train: Tensor, Y: Tensor, K_test_train: Tensor, ridge: float) -> Tensor:
    """f(X_test) = K_test,train (K_train + n ridge I)^{-1} Y, n = len(K_train) (paper 14 §2).

    A direct solve in float64; Y is (n,) or (n, C), the result (m,) or (m, C).
    """
    n = K_train.shape[0]
    system = K_train.double() + n * ridge * torch.eye(n, dtype=torch.float64, device=K_train.device)
    return K_test_train.double() @ torch.linalg.solve(system, Y.double())


class SpectralKernelRidge:
    """Kernel ridge regression for a whole grid of ridges from ONE eigendecomposition.

    With K_train = U diag(e) U^T and the paper-14 §2 convention (K + n lambda I)^{-1}:
        dual coefficients  alpha(lambda) = U diag(1 / (e + n lambda)) U^T Y,
        smoother           S(lambda) = K (K + n lambda I)^{-1}, eigenvalues e / (e + n lambda),
        train residuals    (I - S) Y = U diag(n lambda / (e + n lambda)) U^T Y,
        test predictions   K_test,train alpha(lambda).
    Every method takes a float ridge (result shaped like the single-ridge answer) or a 1-D
    grid (results stacked along a new leading axis). Y is (n,) or (n, C) and keeps its
    shape. float64 throughout. Eigenvalues below 0 are round-off of a PSD kernel and are set
    to 0, so ridge must be > 0 unless K_train is positive definite.
    """

    def __init__(self, K_train: Tensor, Y: Tensor) -> None:
        K = K_train.double()
        eigenvalues, eigenvectors = torch.linalg.eigh((K + K.T) / 2)
        self.n = K.shape[0]
        self.eigenvalues = eigenvalues.clamp_min(0.0)
        self.eigenvectors = eigenvectors
        self.targets = Y.double()
        self._projected_targets = eigenvectors.T @ self.targets.reshape(self.n, -1)

    def smoother_eigenvalues(self, ridge: float | Sequence[float] | Tensor) -> Tensor:
        """e / (e + n lambda): (n,) or (G, n); their sum is tr S(lambda)."""
        ridges, single = self._as_grid(ridge)
        values = self.eigenvalues / self._shifted_eigenvalues(ridges)
        return values[0] if single else values

    def dual_coefficients(self, ridge: float | Sequence[float] | Tensor) -> Tensor:
        """alpha(lambda) = (K + n lambda I)^{-1} Y."""
        ridges, single = self._as_grid(ridge)
        weights = 1.0 / self._shifted_eigenvalues(ridges)
        return self._from_spectrum(self.eigenvectors, weights, single)

    def train_residuals(self, ridge: float | Sequence[float] | Tensor) -> Tensor:
        """(I - S(lambda)) Y = Y - K alpha(lambda), the training residuals used by GCV."""
        ridges, single = self._as_grid(ridge)
        shifted = self._shifted_eigenvalues(ridges)
        weights = (self.n * ridges[:, None]) / shifted
        return self._from_spectrum(self.eigenvectors, weights, single)

    def predict(self, K_test_train: Tensor, ridge: float | Sequence[float] | Tensor) -> Tensor:
        """K_test,train alpha(lambda): (m,)/(m, C), or (G, m)/(G, m, C) for a grid."""
        ridges, single = self._as_grid(ridge)
        weights = 1.0 / self._shifted_eigenvalues(ridges)
        return self._from_spectrum(K_test_train.double() @ self.eigenvectors, weights, single)

    def _as_grid(self, ridge: float | Sequence[float] | Tensor) -> tuple[Tensor, bool]:
        ridges = torch.as_tensor(ridge, dtype=torch.float64, device=self.eigenvalues.device)
        return ridges.reshape(-1), ridges.ndim == 0

    def _shifted_eigenvalues(self, ridges: Tensor) -> Tensor:
        return self.eigenvalues[None, :] + self.n * ridges[:, None]

    def _from_spectrum(self, basis: Tensor, weights: Tensor, single: bool) -> Tensor:
        """basis @ diag(weights_g) @ U^T Y for every grid row g, shaped like Y."""
        result = basis @ (weights[:, :, None] * self._projected_targets)
        result = result.reshape(len(weights), basis.shape[0], *self.targets.shape[1:])
        return result[0] if single else result
