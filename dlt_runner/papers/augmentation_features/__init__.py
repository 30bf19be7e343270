"""Data Augmentation as Feature Manipulation.

Ruoqi Shen, Sébastien Bubeck, Suriya Gunasekar. ICML 2022 (PMLR 162), arXiv:2203.01572.

Claim: augmentation changes the learning dynamics, not only the data count: it shifts the
relative importance of features so that an informative but hard-to-learn feature is picked up.
On the multi-view data model of Allen-Zhu & Li (images of patches carrying an easy and a hard
view of their class) a two-layer convolutional net with a cubic activation learns the easy view
and memorises the rest unless augmentation removes the easy view from some inputs, and the
effect is much weaker for the linear model.

The CPU-scale data model (one easy and one hard view per class, noise level, strengths), the
patch-drop augmentation and the CIFAR-10 probes are our reconstruction: the paper's exact
constants and official code were not available.
"""
