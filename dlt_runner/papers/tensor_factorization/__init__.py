"""Implicit Regularization with Polynomial Growth in Deep Tensor Factorization.

Kais Hariz, Hachem Kadri, Stéphane Ayache, Maher Moakher, Thierry Artières. ICML 2022 (PMLR 162),
arXiv:2207.08942.

Claim: gradient descent on a factorised model of a partially observed tensor is implicitly biased
towards low tensor rank, and while that "rich get richer" growth of components is at most
quadratic in their norm for deep matrix and shallow CP factorisations, in deep tensor
factorisation it grows polynomially with depth. Numerically, deeper factorisations complete
tensors more accurately (lower error on the unobserved entries) and converge better.

Reconstructed here (the paper's model section and experimental details could not be read): the
deep parameterisation of the CP factors (``nets.DeepCPFactorization``: each factor vector the
output of its own depth-L linear network, by analogy with the same authors' deep Tucker code),
its initialisation, the CPU-scale sizes and thresholds. Shallow CP, the adaptive global step
(``optim.GroupRMSprop``), the data generator and the metrics follow Razin, Maman & Cohen (ICML
2021) and their code (noamrazin/imp_reg_in_tf).
"""
