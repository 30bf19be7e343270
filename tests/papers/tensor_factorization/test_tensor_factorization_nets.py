"""CP factorisations: reconstruction = sum of outer products, depth 1 = shallow CP, variants."""

from __future__ import annotations

import math

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.tensor_factorization.nets import CPFactorization, DeepCPFactorization


def _outer_sum(factors: list[torch.Tensor], model: int) -> torch.Tensor:
    """sum_r w_{1,r} ⊗ ... ⊗ w_{N,r} for one model, by explicit outer products."""
    total = torch.zeros(tuple(f.shape[-1] for f in factors), dtype=factors[0].dtype)
    for r in range(factors[0].shape[1]):
        component = factors[0][model, r]
        for factor in factors[1:]:
            component = torch.tensordot(component, factor[model, r], dims=0)
        total += component
    return total


@pytest.mark.parametrize("shape", [(4, 5, 6), (3, 4, 2, 5)])
def test_cp_reconstruction_is_the_sum_of_outer_products(shape):
    torch.manual_seed(0)
    net = CPFactorization(shape, rank=3, init_std=1.0, n_models=2).double()
    tensor = net()
    assert tensor.shape == (2, *shape)
    for model in range(2):
        expected = _outer_sum(net.factor_vectors(), model)
        assert torch.allclose(tensor[model], expected, atol=1e-12)


@pytest.mark.parametrize("variant", ["vector", "matrix", "scalar"])
def test_entries_are_the_reconstruction_at_the_indices(variant):
    torch.manual_seed(1)
    net = DeepCPFactorization((4, 5, 6), rank=3, depth=3, variant=variant, n_models=2).double()
    index = torch.stack([torch.randint(0, d, (50,)) for d in (4, 5, 6)], dim=1)
    full = net()
    expected = full[:, index[:, 0], index[:, 1], index[:, 2]]
    assert torch.allclose(net.entries(index), expected, atol=1e-12)


@pytest.mark.parametrize("init", ["matched", "per_layer"])
def test_depth_one_is_shallow_cp_with_the_same_draws(init):
    shape = (4, 5, 6)
    torch.manual_seed(7)
    shallow = CPFactorization(shape, rank=3, init_std=0.3, n_models=2)
    torch.manual_seed(7)
    deep = DeepCPFactorization(shape, rank=3, depth=1, init=init, init_std=0.3, n_models=2)
    shapes = sorted(tuple(p.shape) for p in shallow.parameters())
    assert shapes == sorted(tuple(p.shape) for p in deep.parameters())
    for a, b in zip(shallow.factor_vectors(), deep.factor_vectors(), strict=True):
        assert torch.allclose(a, b, rtol=1e-6, atol=0)
    # Same parameters -> same function and same gradients.
    deep.load_state_dict(
        {k.replace("factors", "vectors"): v for k, v in shallow.state_dict().items()}
    )
    assert torch.equal(shallow(), deep())
    index = torch.tensor([[0, 1, 2], [3, 4, 5], [1, 1, 1]])
    shallow.entries(index).pow(2).sum().backward()
    deep.entries(index).pow(2).sum().backward()
    for a, b in zip(shallow.parameters(), deep.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)


def test_vector_variant_is_a_product_of_matrices_per_factor_vector():
    torch.manual_seed(2)
    net = DeepCPFactorization((3, 4, 5), rank=2, depth=4, variant="vector", n_models=2).double()
    factors = net.factor_vectors()
    for mode, d in enumerate((3, 4, 5)):
        layers = net.layers[mode]
        assert layers.shape == (2, 3, 2, d, d)
        for m in range(2):
            for r in range(2):
                # w = M_4 M_3 M_2 v: layer 0 (M_2) acts first.
                product = layers[m, 2, r] @ layers[m, 1, r] @ layers[m, 0, r]
                expected = product @ net.vectors[mode][m, r]
                assert torch.allclose(factors[mode][m, r], expected, atol=1e-12)


def test_matrix_variant_shares_layers_across_components_and_scalar_variant_scales():
    torch.manual_seed(3)
    net = DeepCPFactorization((3, 4, 5), rank=2, depth=3, variant="matrix", n_models=1).double()
    for mode in range(3):
        layers, vectors = net.layers[mode][0], net.vectors[mode][0]
        expected = (layers[1] @ layers[0] @ vectors.T).T
        assert torch.allclose(net.factor_vectors()[mode][0], expected, atol=1e-12)
    scalar = DeepCPFactorization((3, 4, 5), rank=2, depth=3, variant="scalar").double()
    with torch.no_grad():
        scalar.layers[0].copy_(torch.tensor([[[2.0, 3.0], [5.0, 7.0]]]))
    assert torch.allclose(
        scalar.factor_vectors()[0][0],
        scalar.vectors[0][0] * torch.tensor([[10.0], [21.0]], dtype=torch.float64),
    )


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_matched_init_gives_the_same_end_to_end_factor_norm_at_every_depth(depth):
    # E||M_L ... M_2 v||^2 = g^(2L) = sigma^2 d exactly when every entry is N(0, g^2 / d).
    torch.manual_seed(4)
    sigma, d = 0.5, 10
    net = DeepCPFactorization((d, d, d), rank=10, depth=depth, init_std=sigma, n_models=100)
    squared = torch.cat([f.pow(2).sum(-1).flatten() for f in net.factor_vectors()])
    assert squared.mean().item() == pytest.approx(sigma**2 * d, rel=0.15)


def test_component_norms_are_frobenius_norms_of_the_rank_one_terms():
    torch.manual_seed(5)
    net = DeepCPFactorization((3, 4, 5), rank=3, depth=2, n_models=2).double()
    factors = net.factor_vectors()
    norms = net.component_norms()
    for m in range(2):
        for r in range(3):
            single = [f[:, r : r + 1] for f in factors]
            assert norms[m, r].item() == pytest.approx(_outer_sum(single, m).norm().item())


def test_bad_configs_fail_with_the_valid_choices():
    with pytest.raises(ConfigError, match="vector, matrix, scalar"):
        DeepCPFactorization((3, 3, 3), rank=2, variant="tensor")
    with pytest.raises(ConfigError, match="matched, per_layer"):
        DeepCPFactorization((3, 3, 3), rank=2, init="xavier")
    with pytest.raises(ConfigError, match="depth"):
        DeepCPFactorization((3, 3, 3), rank=2, depth=0)
    assert math.prod(CPFactorization((3, 3), rank=1)().shape) == 9
