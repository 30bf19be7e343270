"""Benefits of Overparameterized Convolutional Residual Networks: Function Approximation under
Smoothness Constraint.

Hao Liu, Minshuo Chen, Siawpeng Er, Wenjing Liao, Tong Zhang, Tuo Zhao. ICML 2022 (PMLR 162,
pp. 13669-13703), arXiv:2206.04569.

Claim: large (over-parameterised) convolutional residual networks approximate a target function
both in value and in first-order smoothness — the network's gradient approximates the target's —
with error bounds that improve as width and depth grow (also for targets on a low-dimensional
manifold). Consequently wider and deeper ConvResNets trained adversarially reach higher
adversarially robust accuracy, robustness needing a small, well-behaved input gradient (the
paper's numerical section, adversarially robust image classification).

What is reconstruction here: no official code is public, and the numbers of the paper's
experiment table are not reproduced. The ConvResNet layout (one stage of pre-activation blocks
without normalisation, a 2x2 average-pool head; ``dlt_runner.nn.resnet.ConvResNet``), the CPU
experiment (sklearn digits, FGSM training with a random start, PGD-10 evaluation) and the
CIFAR-10 preset (wide pre-activation ResNets without normalisation, PGD training as in Madry
et al. 2018) are our reconstruction of that section.
"""
