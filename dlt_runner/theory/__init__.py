"""Maths shared by several papers, as pure functions of tensors (no Lightning).

One topic per module: `entk` (empirical neural tangent kernel), `closed_form_kernels`
(infinite-width NNGP/NTK), `kernel_ridge` (kernel ridge regression), `alignment`
(kernel-target alignment), `metrics` (accuracy, relative error).
"""
