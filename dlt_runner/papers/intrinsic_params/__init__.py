"""Deep Network Approximation in Terms of Intrinsic Parameters.

Zuowei Shen, Haizhao Yang, Shijun Zhang. ICML 2022 (PMLR 162).

Claim: a ReLU network phi = A_{f,R} o phi_out o phi_f o phi_in whose parameters split into a
few "intrinsic" ones that depend on the target f (phi_f and the affine rescaling A_{f,R}) and
many fixed ones (phi_in, phi_out) approximates any Lipschitz f on [0, 1]^d with only n + 2
intrinsic parameters to error about 5 lambda sqrt(d) 2^-n. Numerically, a CNN whose conv
layers are random or pre-trained on a related task and frozen, with only a small fully
connected block trained, classifies nearly as well as the fully trained network.

CPU scale (reconstruction): the paper's experiments use image benchmarks with a Fig. 4-style
CNN; here sklearn's 8x8 digits 0-4 are the related task that pre-trains phi_in and digits 5-9
the target task on which only phi_f = Linear(256 -> k) and the 10-parameter output affine map
are trained between a frozen phi_in and a frozen random phi_out. The 1-D theory demonstration
(``construction.py``: a grid-index map and bit extraction from one real parameter) follows the
paper's construction in spirit; its sub-networks are our reconstruction.
"""
