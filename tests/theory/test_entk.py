"""The empirical NTK against per-sample gradient loops (exact) and its block/dtype options."""

import pytest
import torch

from dlt_runner.nn import MLP
from dlt_runner.theory.entk import empirical_ntk

F64 = torch.float64


@pytest.fixture
def small_net():
    torch.manual_seed(0)
    return MLP([3, 7, 5, 4], "tanh", "ntk", weight_std=[1.2, 0.9, 1.1], bias_std=0.3).double()


@pytest.fixture
def points():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(5, 3, generator=generator, dtype=F64), torch.randn(
        4, 3, generator=generator, dtype=F64
    )


def jacobian_by_loop(model, x, names=None):
    """{name: (n, C, P_name)} from one autograd.grad call per sample and per output."""
    params = dict(model.named_parameters())
    names = list(params) if names is None else names
    rows = []
    for sample in x:
        out = model(sample[None]).reshape(-1)
        per_output = []
        for c in range(len(out)):
            grads = torch.autograd.grad(out[c], [params[n] for n in names], retain_graph=True)
            per_output.append([g.reshape(-1) for g in grads])
        rows.append(per_output)
    return {
        name: torch.stack([torch.stack([row[c][k] for c in range(len(row))]) for row in rows])
        for k, name in enumerate(names)
    }


def kernel_from_jacobians(j1, j2, output):
    full = sum(torch.einsum("iap,jbp->ijab", j1[n], j2[n]) for n in j1)
    if output == "full":
        return full
    if output == "trace":
        return full.diagonal(0, 2, 3).sum(-1)
    if output == "sum":
        return full.sum((2, 3))
    return full[:, :, output, output]


# --- empirical NTK: exactness -------------------------------------------------------------


@pytest.mark.parametrize("output", ["sum", "trace", "full", 2, -1])
@pytest.mark.parametrize("cross", [False, True])
def test_empirical_ntk_equals_per_sample_gradient_loop(small_net, points, output, cross):
    x1, x2 = points
    j1 = jacobian_by_loop(small_net, x1)
    j2 = jacobian_by_loop(small_net, x2) if cross else j1
    expected = kernel_from_jacobians(j1, j2, output)
    kernel = empirical_ntk(small_net, x1, x2 if cross else None, output=output, chunk_size=2)
    torch.testing.assert_close(kernel, expected, rtol=1e-10, atol=1e-12)


def test_per_layer_kernels_match_loop_and_sum_to_the_whole(small_net, points):
    x1, x2 = points
    per_layer = empirical_ntk(small_net, x1, x2, output="trace", per_layer=True)
    assert list(per_layer) == ["layers.0", "layers.1", "layers.2"]
    j1, j2 = jacobian_by_loop(small_net, x1), jacobian_by_loop(small_net, x2)
    for name, kernel in per_layer.items():
        owned = [n for n in j1 if n.startswith(name + ".")]
        expected = kernel_from_jacobians(
            {n: j1[n] for n in owned}, {n: j2[n] for n in owned}, "trace"
        )
        torch.testing.assert_close(kernel, expected, rtol=1e-10, atol=1e-12)
    whole = empirical_ntk(small_net, x1, x2, output="trace")
    torch.testing.assert_close(sum(per_layer.values()), whole, rtol=1e-12, atol=1e-12)


def test_parameter_subset_is_the_kernel_of_those_parameters(small_net, points):
    """Paper 07's J_l = df/dW_l: weights only."""
    x1, _ = points
    weights = ["layers.0.weight", "layers.1.weight", "layers.2.weight"]
    kernel = empirical_ntk(small_net, x1, output="trace", parameters=weights, per_layer=True)
    j = jacobian_by_loop(small_net, x1, weights)
    for name in weights:
        expected = kernel_from_jacobians({name: j[name]}, {name: j[name]}, "trace")
        torch.testing.assert_close(kernel[name.rpartition(".")[0]], expected, rtol=1e-10, atol=0)


def test_symmetric_and_positive_semidefinite(small_net):
    x = torch.randn(9, 3, dtype=F64)
    kernel = empirical_ntk(small_net, x, output="trace", chunk_size=4)
    assert torch.equal(kernel, kernel.T)
    eigenvalues = torch.linalg.eigvalsh(kernel)
    assert eigenvalues.min() > -1e-12 * eigenvalues.max()
    full = empirical_ntk(small_net, x, output="full", chunk_size=4)
    assert torch.equal(full, full.permute(1, 0, 3, 2))
    # the (n C) x (n C) matrix of all output pairs is a Gram matrix too
    flat = full.permute(0, 2, 1, 3).reshape(9 * 4, 9 * 4)
    assert torch.linalg.eigvalsh(flat).min() > -1e-12 * eigenvalues.max()


@pytest.mark.parametrize("cross", [False, True])
def test_chunking_does_not_change_the_kernel(small_net, points, cross):
    x1, x2 = torch.randn(7, 3, dtype=F64), (points[1] if cross else None)
    reference = empirical_ntk(small_net, x1, x2, output="full", chunk_size=100)
    for chunk_size in (1, 2, 3):
        kernel = empirical_ntk(small_net, x1, x2, output="full", chunk_size=chunk_size)
        torch.testing.assert_close(kernel, reference, rtol=1e-12, atol=1e-14)


class CountingNet(torch.nn.Module):
    """Counts forward passes: one per Jacobian block (vmap traces the forward once)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


@pytest.mark.parametrize(("cross", "expected_calls"), [(False, 1 + 3 + 3), (True, 1 + 3 + 3 * 2)])
def test_automatic_block_size_follows_the_memory_budget(small_net, points, cross, expected_calls):
    """4 outputs x 92 parameters x 8 bytes per sample: a budget of 3 samples gives 3 row
    blocks of the 7 points; the symmetric kernel computes only the upper block triangle.
    One more forward pass reads the number of outputs."""
    x1, x2 = torch.randn(7, 3, dtype=F64), (points[1] if cross else None)
    counting = CountingNet(small_net)
    kernel = empirical_ntk(counting, x1, x2, output="full", block_bytes=3 * 4 * 92 * 8 + 7)
    assert counting.calls == expected_calls
    reference = empirical_ntk(small_net, x1, x2, output="full", chunk_size=100)
    torch.testing.assert_close(kernel, reference, rtol=1e-12, atol=1e-14)


def test_sum_trace_full_relations(small_net, points):
    x1, x2 = points
    full = empirical_ntk(small_net, x1, x2, output="full")
    assert full.shape == (5, 4, 4, 4)
    summed = empirical_ntk(small_net, x1, x2, output="sum")
    trace = empirical_ntk(small_net, x1, x2, output="trace")
    torch.testing.assert_close(summed, full.sum((2, 3)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(trace, full.diagonal(0, 2, 3).sum(-1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(empirical_ntk(small_net, x1, x2, output=1), full[:, :, 1, 1])
    # with one output all four coincide
    torch.manual_seed(0)
    scalar_net = MLP([3, 6, 1], "tanh").double()
    kernels = [empirical_ntk(scalar_net, x1, x2, output=o) for o in ("sum", "trace", 0)]
    for kernel in kernels[1:]:
        torch.testing.assert_close(kernel, kernels[0], rtol=1e-14, atol=0)


def test_dtype_argument_computes_in_float64_without_touching_the_model(small_net, points):
    x1, x2 = points
    single = MLP([3, 7, 5, 4], "tanh", "ntk", [1.2, 0.9, 1.1], 0.3)
    single.load_state_dict({k: v.float() for k, v in small_net.state_dict().items()})
    # the float64 reference must see the same (float32-rounded) weights
    small_net.load_state_dict({k: v.double() for k, v in single.state_dict().items()})
    kernel = empirical_ntk(single, x1.float(), x2.float(), output="trace", dtype=F64)
    assert kernel.dtype == F64
    assert single.layers[0].weight.dtype == torch.float32
    expected = empirical_ntk(small_net, x1, x2, output="trace")
    torch.testing.assert_close(kernel, expected, rtol=1e-6, atol=1e-7)  # inputs were rounded


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output": "diag"}, "unknown output 'diag'; choose one of: sum, trace, full"),
        ({"parameters": ["layers.9.weight"]}, r"unknown parameter\(s\) \['layers.9.weight'\]"),
        ({"parameters": []}, "no parameters to differentiate"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer, got 0"),
    ],
)
def test_bad_arguments(small_net, points, kwargs, message):
    with pytest.raises(ValueError, match=message):
        empirical_ntk(small_net, points[0], **kwargs)
