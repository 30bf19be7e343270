"""Empirical neural tangent kernel Theta(x, x') = J(x) J(x')^T, as a pure function.

Per-sample parameter Jacobians come from torch.func (`functional_call` + `vmap(jacrev)`),
for the whole network or per layer, in memory-bounded blocks. Used by the papers that compare
a finite net's kernel with theory (Simon et al. 2022), align it with the labels (Lou et al.
2022) or regress on it (Wei et al. 2022).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from dlt_runner.core.errors import positive_int, unknown_choice

OUTPUTS = ("sum", "trace", "full")


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
            'sum'   -> (n1, n2), kernel of the scalar sum_c f_c (Wei et al. 2022: the "logit sum");
            'trace' -> (n1, n2), sum_c <df_c(x), df_c(x')> (Lou et al. 2022: summed over logits);
            'full'  -> (n1, n2, C, C), entry [i, j, a, b] = <df_a(x_i), df_b(x'_j)>;
            an int c -> (n1, n2), kernel of the single output f_c (Simon et al. 2022: one logit).
            So 'sum' = full.sum((2, 3)) and 'trace' = full.diagonal(0, 2, 3).sum(-1).
        per_layer: if True, return {module name: kernel} with one kernel per module that
            owns differentiated parameters (e.g. 'layers.0' = its weight and bias), in
            parameter order; the kernels sum to the whole-network kernel.
        parameters: names (as in `model.named_parameters()`) to differentiate; default all
            parameters with requires_grad; e.g. only the weights, for the J_l = df/dW_l of
            Lou et al. 2022.
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
        raise ValueError(unknown_choice("output", output, [*OUTPUTS, "or an int index"]))
    if chunk_size is not None:
        positive_int("chunk_size", chunk_size)
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
