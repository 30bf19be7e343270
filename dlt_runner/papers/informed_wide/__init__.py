"""Informed Learning by Wide Neural Networks: Convergence, Generalization and Sampling Complexity.

Jianyi Yang, Shaolei Ren. NeurIPS 2022, arXiv:2207.00751.

Claim: a wide (NTK-regime) network trained on labels plus domain knowledge,
L = (1 - lambda) * label loss + lambda * knowledge loss, has a population-risk bound with a
label-imperfectness term (label noise) and a knowledge-imperfectness term (||g - f*||) that
lambda trades off. So when both labels and knowledge are imperfect, an intermediate lambda beats
label-only (lambda = 0) and knowledge-only (lambda = 1) training: the test risk is U-shaped in
lambda.
"""
