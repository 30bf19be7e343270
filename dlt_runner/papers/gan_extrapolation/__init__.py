"""Principled Knowledge Extrapolation with GANs.

Ruili Feng, Jie Xiao, Kecheng Zheng, Deli Zhao, Jingren Zhou, Qibin Sun, Zheng-Jun Zha.
ICML 2022 (PMLR 162), arXiv:2205.13444.

Claim (abstract): counterfactual synthesis can be posed as *knowledge extrapolation*: push one
knowledge dimension of a data distribution beyond the data while the remaining knowledge stays
indistinguishable from the original distribution; an adversarial game with a closed-form
discriminator characterises the extrapolated distribution, and principal knowledge descent (PKD)
estimates it from a pretrained GAN, without a causal graph built into the generator.

Only the abstract and the start of the introduction could be read; no official code exists.
Everything below that level is a **reconstruction**: the PKD update (a minimum-norm latent step
along the target knowledge inside the null space of the remaining knowledge's Jacobian, after the
null-space projection of LowRankGAN, github.com/zhujiapeng/LowRankGAN, by overlapping authors),
its `pull` and `witness` (closed-form MMD critic) variants, the 1-D bump data with
differentiable knowledge heads, the naive latent-ascent and conditional-GAN baselines, and the
k-NN classifier two-sample test that checks "indistinguishable".
"""
