"""Understanding Contrastive Learning Requires Incorporating Inductive Biases.

Nikunj Saunshi, Jordan T. Ash, Surbhi Goel, Dipendra Misra, Cyril Zhang, Sanjeev Arora, Sham
Kakade, Akshay Krishnamurthy. ICML 2022 (PMLR 162:19250-19286), arXiv:2202.14037.

Claim: guarantees that bound downstream error through the contrastive loss alone (paper eq. 5)
are vacuous when augmentations are disjoint: on the hypercube of Example 1 a perfect and a
spurious representation reach the same contrastive loss with 100% and 50% downstream accuracy
(Table 1, Lemmas 4.1/4.2). Which minimiser training finds depends on the function class and the
algorithm: a linear encoder transfers almost perfectly while an MLP reaches as low a loss and
transfers worse (Table 1, Corollary 4.2).

Reconstructions (the paper's exact choices could not be read): the constructed spurious
representation g = f∘σ with the involution σ of :mod:`~dlt_runner.papers.contrastive_bias.nets`
(it follows the paper's "permute instance identities" proof idea, Appendix C), the MLP's width
and depth, the CPU sizes (D = 100, k = 10, d = 10, 1,000 steps), and the CIFAR-10 training
recipe (SimCLR defaults). The hypercube data and its multiplicative augmentation follow Example 1
and the public re-implementation dante-hl/matrixssl-inductive (``data/loader.py``).
"""
