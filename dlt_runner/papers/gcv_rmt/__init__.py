"""More Than a Toy: Random Matrix Models Predict How Real-World Neural Representations Generalize.

Alexander Wei, Wei Hu, Jacob Steinhardt. ICML 2022 (PMLR 162), arXiv:2203.06176.

Claim: for kernel ridge regression on real neural representations (empirical NTKs and
features of random-init and pre-trained networks), the generalised cross-validation estimator
GCV(lambda), computed from training data alone, predicts the test risk across ridge strengths.
Through the same lens, pre-trained representations generalise better than randomly initialised
ones of the same architecture.
"""
