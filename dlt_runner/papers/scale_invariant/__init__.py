"""Robust Training of Neural Networks Using Scale Invariant Architectures.

Zhiyuan Li, Srinadh Bhojanapalli, Manzil Zaheer, Sashank J. Reddi, Sanjiv Kumar; ICML 2022
(PMLR 162:12656-12684, arXiv 2202.00980).

A network whose output is invariant to a common rescaling of all its parameters, trained with
plain SGD + weight decay λ and the global gradient norm clipped to |θ|·sqrt(2λ/η), converges in a
number of steps only logarithmic in the initial parameter norm and the loss scale, where SGD on
a standard network fails for many of them. Mechanism: for such nets the effective learning rate
is η/|θ|², and weight decay drives |θ| to an equilibrium whatever its start.
"""
