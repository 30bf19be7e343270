"""Convolutional and Residual Networks Provably Contain Lottery Tickets.

Rebekka Burkholz, ICML 2022 (PMLR 162, 2414-2433); official code RelationalML/LT-existence.

Claim: a randomly initialised CNN or residual net that is one layer deeper (L+1) or twice as
deep (2L) as a target network, and wider by a factor logarithmic in 1/eps, contains a
subnetwork, found by pruning alone, that approximates the target to accuracy eps; the proof
solves one subset-sum problem per target parameter. Here: the L+1 / 2L constructions of the
official code (``constructions.py``, with the differences listed there), its per-parameter
ResNet ticket and subset-sum statistics, and the search route, edge-popup supermasks on frozen
random conv / residual nets (Ramanujan et al. 2020), on sklearn digits at CPU scale
(reconstruction) and MNIST / CIFAR-10 at paper scale.
"""
