"""Reverse Engineering the Neural Tangent Kernel.

James B. Simon, Sajant Anand, Michael R. DeWeese. ICML 2022 (PMLR 162), arXiv:2106.03186.
Official code: github.com/james-simon/reverse-engineering (JAX / neural-tangents notebooks).

Claim: any positive-semidefinite dot-product kernel on the sphere is exactly the NNGP or the NTK
of a fully-connected net with ONE hidden layer, whose activation's Hermite coefficients are read
off the kernel's power series (a_k = sqrt(b_k) or sqrt(b_k / (k + 1))). So a shallow net with an
engineered activation can mimic a deep ReLU net's kernel, and matches its performance.
"""
