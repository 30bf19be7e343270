"""SE(3) Equivariant Graph Neural Networks with Complete Local Frames (ClofNet).

Weitao Du, He Zhang, Yuanqi Du, Qi Meng, Wei Chen, Nanning Zheng, Bin Shao, Tie-Yan Liu.
ICML 2022 (arXiv:2110.14811).

Claim: giving every edge an equivariant orthonormal frame built from cross products, and
turning geometric vectors into scalars by projecting them onto it (and predicted scalars back
into vectors with the same frame), yields a cheap SE(3)-equivariant message-passing network that
loses no directional information. On the charged-particle N-body benchmark (ES(5), ES(20),
G+ES(20), L+ES(20)) it predicts future positions with lower MSE than EGNN and the other
equivariant baselines.
"""
