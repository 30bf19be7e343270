"""Kernel ridge regression: direct solves and the one-eigendecomposition ridge path."""

import numpy as np
import pytest
import torch

from dlt_runner.theory.closed_form_kernels import input_covariance, relu_nngp_ntk
from dlt_runner.theory.kernel_ridge import SpectralKernelRidge, kernel_ridge_predict

F64 = torch.float64


# --- kernel ridge regression --------------------------------------------------------------


@pytest.fixture
def regression_problem():
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(40, 6, generator=generator, dtype=F64)
    X_test = torch.randn(25, 6, generator=generator, dtype=F64)
    nngp_train, _ = relu_nngp_ntk(*input_covariance(X), depth=2, weight_std=1.4, bias_std=0.2)
    nngp_test, _ = relu_nngp_ntk(
        *input_covariance(X_test, X), depth=2, weight_std=1.4, bias_std=0.2
    )
    Y = torch.randn(40, 3, generator=generator, dtype=F64)
    return nngp_train, Y, nngp_test


def test_kernel_ridge_predict_equals_a_direct_solve(regression_problem):
    K, Y, K_test = regression_problem
    for ridge in (1e-6, 1e-2, 1.0):
        expected = K_test.numpy() @ np.linalg.solve(K.numpy() + 40 * ridge * np.eye(40), Y.numpy())
        prediction = kernel_ridge_predict(K, Y, K_test, ridge)
        np.testing.assert_allclose(prediction.numpy(), expected, rtol=1e-8, atol=1e-10)
    assert kernel_ridge_predict(K, Y[:, 0], K_test, 0.1).shape == (25,)


@pytest.mark.parametrize("one_output", [False, True])
def test_spectral_ridge_path_equals_per_ridge_direct_solves(regression_problem, one_output):
    K, Y, K_test = regression_problem
    Y = Y[:, 0] if one_output else Y
    ridges = torch.logspace(-6, 0, 7, dtype=F64)
    path = SpectralKernelRidge(K, Y)
    predictions, residuals = path.predict(K_test, ridges), path.train_residuals(ridges)
    coefficients, smoother = path.dual_coefficients(ridges), path.smoother_eigenvalues(ridges)
    assert predictions.shape == (7, 25, *Y.shape[1:]) and residuals.shape == (7, *Y.shape)
    for g, ridge in enumerate(ridges.tolist()):
        system = K + 40 * ridge * torch.eye(40, dtype=F64)
        alpha = torch.linalg.solve(system, Y)
        S = K @ torch.linalg.inv(system)
        torch.testing.assert_close(coefficients[g], alpha, rtol=1e-7, atol=1e-8)
        torch.testing.assert_close(predictions[g], K_test @ alpha, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(residuals[g], Y - S @ Y, rtol=1e-8, atol=1e-10)
        assert smoother[g].sum().item() == pytest.approx(torch.trace(S).item(), rel=1e-9)
        single = path.predict(K_test, ridge)
        torch.testing.assert_close(single, predictions[g], rtol=1e-12, atol=0)
