"""Kernel-target alignment against its definition."""

import numpy as np
import pytest
import torch

from dlt_runner.theory.alignment import kernel_alignment

F64 = torch.float64


# --- kernel-target alignment --------------------------------------------------------------


def test_alignment_of_the_label_kernel_is_one_and_scale_invariant():
    generator = torch.Generator().manual_seed(0)
    Y = torch.nn.functional.one_hot(torch.randint(0, 3, (20,), generator=generator), 3).double()
    assert kernel_alignment(Y @ Y.T, Y) == pytest.approx(1.0, abs=1e-12)
    features = torch.randn(20, 8, generator=generator, dtype=F64)
    K = features @ features.T
    reference = kernel_alignment(K, Y)
    for scale in (1e-30, 1e-3, 1e30):  # vanishing / exploding tangent kernels (Lou et al. 2022)
        assert kernel_alignment(scale * K, Y) == pytest.approx(reference, rel=1e-12)
    assert kernel_alignment(K.float(), Y.float()) == pytest.approx(reference, rel=1e-5)


def test_alignment_matches_its_definition_and_is_nan_safe():
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(15, 4, generator=generator, dtype=F64)
    K, y = features @ features.T, torch.randn(15, generator=generator, dtype=F64)
    target = np.outer(y.numpy(), y.numpy())
    expected = (K.numpy() * target).sum() / (np.linalg.norm(K.numpy()) * np.linalg.norm(target))
    assert kernel_alignment(K, y) == pytest.approx(expected, rel=1e-12)
    H = np.eye(15) - 1 / 15
    Kc, Tc = H @ K.numpy() @ H, H @ target @ H
    expected = (Kc * Tc).sum() / (np.linalg.norm(Kc) * np.linalg.norm(Tc))
    assert kernel_alignment(K, y, centered=True) == pytest.approx(expected, rel=1e-12)
    assert kernel_alignment(torch.zeros(15, 15), y) == 0.0
