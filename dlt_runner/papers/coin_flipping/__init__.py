"""Coin Flipping Neural Networks.

Yuval Sieradzki, Nitzan Hodos, Gal Yehuda, Assaf Schuster. ICML 2022 (PMLR 162:20195-20214),
arXiv:2206.09182.

Claim: a network that draws fresh random numbers on every forward pass (a coin-flipping neural
network, CFNN) can beat deterministic networks through amplification, the majority vote over
repeated passes; a 2-layer CFNN with O(1) neurons approximates the indicator of the d-ball to
arbitrary accuracy, where a deterministic 2-layer net needs exp(Omega(d)) neurons.

Reconstruction: only the paper's first page could be read and no official code is public, so
the analytic ball CFNN, the learned weight generator, the vote-margin loss, the ball data and
the image CFNN (a hypernetwork last layer on a ResNet) are our constructions from the abstract's
statements (named as such where they appear).
"""
