"""Feature Learning and Signal Propagation in Deep Neural Networks.

Yizhang Lou, Chris Mingard, Yoonsoo Nam, Soufiane Hayou. ICML 2022 (PMLR 162:14248-14282),
arXiv:2110.11749.

Claim: after training, the alignment A_l = <K_l, Y Y^T>_F / (||K_l||_F ||Y Y^T||_F) between the
tangent kernel of layer l's weights and the labels rises and then falls with the layer index,
peaking at a hidden layer rather than at the first layer or the readout. The paper's
Equilibrium Hypothesis ties this ascent-descent pattern to signal propagation (the forward and
backward signal magnitudes set by the initialisation scale sigma_w and the activation).
"""
