"""Coin-flipping networks (CFNNs) and the deterministic baselines they are compared with.

A CFNN draws fresh random numbers on every forward pass (Sieradzki et al. 2022, §1: a network
"with access to randomness"); one pass is one coin flip of the classifier, and its accuracy
comes from amplification, the majority vote over many passes (``vote.MajorityVote``).

Every CFNN here is a :class:`StochasticNet`: a deterministic ``features(x)`` computed once per
input, then a ``head(features, noise)`` evaluated for a batch of noise draws, returning
per-pass logits of shape ``(passes, batch, outputs)``; ``outputs == 1`` is a binary classifier
(class 1 iff the logit is positive), otherwise the pass's class is the argmax.

- :class:`AnalyticBallCFNN`: the ball-indicator CFNN with 2 hidden ReLU neurons and no training
  (paper §1 states the result: 2 layers, O(1) neurons; the construction is our reconstruction).
- :class:`GeneratedWeightsCFNN`: 2-layer CFNN whose hidden weights come from a learned linear
  Gaussian generator W = m + A z (reconstruction of the paper's "generator for the network's
  weights", abstract).
- :class:`HypernetCFNN`: a deterministic backbone whose classifier weights a hypernetwork
  generates from fresh noise each pass (reconstruction of the paper's image CFNNs on
  CIFAR-10/100, whose architectures could not be read).
- :class:`ReLUBaseline`: the deterministic 2-layer ReLU net of a given width.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import Tensor, nn

from dlt_runner.core.errors import ConfigError, positive_int
from dlt_runner.nn.mlp import MLP
from dlt_runner.papers.coin_flipping.vote import check_pass_output

#: Median of |N(0, 1)|, Phi^{-1}(3/4): with this threshold the analytic CFNN votes "inside"
#: with probability exactly 1/2 on the sphere ||x|| = radius.
MEDIAN_ABS_NORMAL = NormalDist().inv_cdf(0.75)


class StochasticNet(nn.Module):
    """A network that flips coins: per-pass logits from a deterministic part and fresh noise.

    Subclasses set ``noise_dim`` and ``n_outputs`` and implement :meth:`head`; ``features``
    defaults to the identity. ``pass_output`` says how a pass turns its logits into a vote
    (``vote.pass_labels``): ``argmax``, or ``sample`` (one more coin: the class drawn from
    the pass's softmax).
    """

    noise_dim: int
    n_outputs: int
    pass_output: str = "argmax"

    def features(self, x: Tensor) -> Tensor:
        """The deterministic part, computed once per input however many passes follow."""
        return x

    def head(self, features: Tensor, noise: Tensor) -> Tensor:
        """Per-pass logits ``(passes, batch, n_outputs)`` for noise ``(passes, noise_dim)``."""
        raise NotImplementedError

    def sample_noise(
        self,
        passes: int,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
    ) -> Tensor:
        """z ~ N(0, I), one row per pass, drawn on the generator's device, then moved."""
        drawn_on = generator.device if generator is not None else device
        noise = torch.randn(passes, self.noise_dim, generator=generator, device=drawn_on)
        return noise.to(device) if device is not None else noise

    def forward(
        self,
        x: Tensor,
        noise: Tensor | None = None,
        passes: int = 1,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        features = self.features(x)
        if noise is None:
            noise = self.sample_noise(passes, generator, features.device)
        return self.head(features, noise.to(features.dtype))

    @property
    def hidden_neurons(self) -> int:
        """Neurons of the classifier that one pass runs (the paper's resource count)."""
        raise NotImplementedError


class AnalyticBallCFNN(StochasticNet):
    """Indicator of the ball ||x|| <= radius by amplification, no training (reconstruction).

    Per pass draw w ~ N(0, I_d). Two ReLU neurons with weights w and -w sum to
    relu(<w,x>) + relu(-<w,x>) = |<w,x>|, and a threshold output unit says "inside" iff
    |<w,x>| <= tau * radius. Since <w,x> ~ N(0, ||x||^2),

        P(pass says inside | x) = P(|N(0,1)| <= tau * radius / ||x||) = 2 Phi(tau r / ||x||) - 1,

    which falls with ||x|| and crosses 1/2 exactly at ||x|| = radius when tau is the median
    of |N(0,1)|; the majority vote of n passes then tends to the ball's indicator (paper §1:
    2 layers, O(1) neurons approximate the d-ball to arbitrary accuracy). The logit is
    ``tau * radius - |<w,x>|`` (positive = inside).

    Args:
        input_dim: d.
        radius: the ball's radius.
        tau: the threshold on |<w,x>| / radius; ``None`` takes the median of |N(0,1)|.
    """

    n_outputs = 1

    def __init__(self, input_dim: int, radius: float = 1.0, tau: float | None = None) -> None:
        super().__init__()
        self.noise_dim = positive_int("input_dim", input_dim)
        if float(radius) <= 0:
            raise ConfigError(f"radius must be positive, got {radius}")
        self.radius = float(radius)
        self.tau = MEDIAN_ABS_NORMAL if tau is None else float(tau)
        if self.tau <= 0:
            raise ConfigError(f"tau must be positive (or null for the median), got {tau}")
        # w and -w: the two hidden neurons share one Gaussian draw.
        self.register_buffer("signs", torch.tensor([1.0, -1.0]), persistent=False)

    def head(self, features: Tensor, noise: Tensor) -> Tensor:
        projection = noise @ features.T  # <w, x>: (passes, batch)
        hidden = torch.relu(projection.unsqueeze(-1) * self.signs.to(projection.dtype))
        return (self.tau * self.radius - hidden.sum(-1)).unsqueeze(-1)

    def inside_probability(self, x: Tensor) -> Tensor:
        """Exact P(pass says inside | x) = 2 Phi(tau radius / ||x||) - 1."""
        ratio = self.tau * self.radius / x.norm(dim=-1)
        return torch.erf(ratio / math.sqrt(2.0))

    @property
    def hidden_neurons(self) -> int:
        return 2


class GeneratedWeightsCFNN(StochasticNet):
    """2-layer CFNN whose hidden weights a learned Gaussian generator draws per pass.

    One z ~ N(0, I_k) per pass, shared by all hidden neurons: W_j = m_j + A_j z (m: h x d,
    A: h x d x k), hidden relu(W x + b), output logit v . hidden + c (deterministic). The
    analytic CFNN is the special case m = 0, A_1 = -A_2 = I, b = 0, v = (-1, -1), c = tau r,
    so the family contains a solution (reconstruction of the paper's weight generator).

    Initialisation: m ~ 0.1 N(0, 1), A ~ N(0, 1) / sqrt(k), b = 0, v = 0, c = 0. v = 0 lets
    the gradient pick the output weights' sign: "inside" means small |<w,x>|, so a random v
    with both entries positive starts on the wrong side and the vote collapses to one class.

    With ``pass_output: sample`` a pass votes 1 with probability sigmoid(logit), so the vote
    is Bernoulli(p_bar(x)) with p_bar = E_z sigmoid: exactly what ``losses.vote_margin``
    trains (with ``argmax`` the vote is 1[logit > 0], which the loss only approximates).

    Args:
        input_dim: d.
        hidden: h, the hidden neurons of one pass.
        noise_dim: k; ``None`` takes d.
        mean_std: std of m's initialisation.
        pass_output: ``sample`` or ``argmax`` (``vote.pass_labels``).
    """

    n_outputs = 1

    def __init__(
        self,
        input_dim: int,
        hidden: int = 2,
        noise_dim: int | None = None,
        mean_std: float = 0.1,
        pass_output: str = "sample",
    ) -> None:
        super().__init__()
        self.pass_output = check_pass_output(pass_output)
        self.input_dim = positive_int("input_dim", input_dim)
        self.hidden = positive_int("hidden", hidden)
        self.noise_dim = (
            self.input_dim if noise_dim is None else positive_int("noise_dim", noise_dim)
        )
        self.mean_std = float(mean_std)
        self.weight_mean = nn.Parameter(torch.empty(self.hidden, self.input_dim))
        self.weight_mixing = nn.Parameter(torch.empty(self.hidden, self.input_dim, self.noise_dim))
        self.hidden_bias = nn.Parameter(torch.zeros(self.hidden))
        self.readout = nn.Parameter(torch.zeros(self.hidden))
        self.readout_bias = nn.Parameter(torch.zeros(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight_mean.normal_(0.0, self.mean_std)
            self.weight_mixing.normal_(0.0, 1.0 / math.sqrt(self.noise_dim))
            self.hidden_bias.zero_()
            self.readout.zero_()
            self.readout_bias.zero_()

    def head(self, features: Tensor, noise: Tensor) -> Tensor:
        # W x = m x + (A z) x, computed as m x + z . (A^T x): no (passes, h, d) weight tensor.
        mean_part = features @ self.weight_mean.T  # (batch, h)
        mixed = torch.einsum("bd,hdk->bhk", features, self.weight_mixing)
        random_part = torch.einsum("bhk,pk->pbh", mixed, noise)
        hidden = torch.relu(mean_part + random_part + self.hidden_bias)
        return (hidden @ self.readout + self.readout_bias).unsqueeze(-1)

    def weights(self, noise: Tensor) -> Tensor:
        """The hidden weight matrices W = m + A z of each pass, ``(passes, h, d)``."""
        return self.weight_mean + torch.einsum("hdk,pk->phd", self.weight_mixing, noise)

    @property
    def hidden_neurons(self) -> int:
        return self.hidden


class HypernetCFNN(StochasticNet):
    """Backbone features, then a classifier whose weights a hypernetwork draws per pass.

    A hypernetwork G maps z ~ N(0, I_k) to the flattened classifier weights and biases
    ``(n_classes, F)`` and ``(n_classes,)``; logits = W(z) phi(x) + b(z). G is
    ``mean + Linear(relu(Linear(z)))``, or ``mean + Linear(z)`` with ``hypernet_hidden: null``
    (a linear Gaussian generator, as for the ball). The backbone's own classifier (``fc``) is
    replaced by the identity, so the CFNN and the deterministic baseline (the same backbone
    with its ordinary last layer) differ only in the generated last layer and the vote
    (reconstruction: the paper's image CFNNs on CIFAR-10/100 draw network weights from a
    generator fed with randomness, but their exact architecture could not be read).

    Initialisation: the mean is a standard ``nn.Linear(F, n_classes)``; G's random part has
    per-entry std ``noise_scale / sqrt(F)`` at initialisation (first layer N(0, 1/k), zero
    bias; last layer N(0, 2 noise_scale^2 / (F H)), zero bias).

    Args:
        backbone: a net with ``features(x)`` and ``n_features`` (e.g. ``dlt_runner.nn.resnet
            .ResNet``); its ``fc`` attribute, if any, is dropped.
        n_classes: outputs.
        noise_dim: k.
        hypernet_hidden: H, width of G's hidden layer; ``None`` for a linear generator.
        noise_scale: std of the generated weights' random part at init, times sqrt(F).
        pass_output: ``argmax`` (plurality of per-pass argmax) or ``sample``
            (``vote.pass_labels``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        n_classes: int,
        noise_dim: int = 64,
        hypernet_hidden: int | None = 256,
        noise_scale: float = 1.0,
        pass_output: str = "argmax",
    ) -> None:
        super().__init__()
        self.pass_output = check_pass_output(pass_output)
        if not hasattr(backbone, "features") or not hasattr(backbone, "n_features"):
            raise ConfigError(
                "the CFNN backbone needs features(x) and n_features (dlt_runner.nn.resnet.ResNet)"
            )
        self.backbone = backbone
        if hasattr(backbone, "fc"):
            backbone.fc = nn.Identity()
        self.n_features = int(backbone.n_features)
        self.n_outputs = positive_int("n_classes", n_classes)
        self.noise_dim = positive_int("noise_dim", noise_dim)
        size = self.n_outputs * (self.n_features + 1)
        mean = nn.Linear(self.n_features, self.n_outputs)
        self.mean = nn.Parameter(
            torch.cat([mean.weight.detach(), mean.bias.detach().unsqueeze(1)], 1).flatten()
        )
        if hypernet_hidden is None:
            self.hypernet: nn.Module = nn.Linear(self.noise_dim, size, bias=False)
            last_std = float(noise_scale) / math.sqrt(self.n_features * self.noise_dim)
        else:
            hidden = positive_int("hypernet_hidden", hypernet_hidden)
            first = nn.Linear(self.noise_dim, hidden)
            self.hypernet = nn.Sequential(first, nn.ReLU(), nn.Linear(hidden, size, bias=False))
            with torch.no_grad():
                first.weight.normal_(0.0, 1.0 / math.sqrt(self.noise_dim))
                first.bias.zero_()
            # E[relu(a)^2] = 1/2 for a ~ N(0, 1): the output entries then have variance
            # H * 1/2 * last_std^2 = noise_scale^2 / F.
            last_std = float(noise_scale) * math.sqrt(2.0 / (self.n_features * hidden))
        with torch.no_grad():
            last = self.hypernet if hypernet_hidden is None else self.hypernet[-1]
            last.weight.normal_(0.0, last_std)

    def features(self, x: Tensor) -> Tensor:
        return self.backbone.features(x)

    def head(self, features: Tensor, noise: Tensor) -> Tensor:
        generated = (self.mean + self.hypernet(noise)).view(-1, self.n_outputs, self.n_features + 1)
        weight, bias = generated[..., :-1], generated[..., -1]
        return torch.einsum("bf,pcf->pbc", features, weight) + bias.unsqueeze(1)

    @property
    def hidden_neurons(self) -> int:
        return self.n_features


class ReLUBaseline(MLP):
    """Deterministic 2-layer ReLU net ``d -> width -> n_outputs`` (the baseline's neurons).

    Safran & Shamir (2016), cited in the paper's abstract, show a deterministic 2-layer net
    needs exp(Omega(d)) neurons to approximate the d-ball's indicator; the width sweep shows how
    many this task needs. Initialisation: ``dlt_runner.nn.MLP``'s standard normal one.
    """

    def __init__(
        self,
        input_dim: int,
        width: int,
        n_outputs: int = 1,
        weight_std: float = math.sqrt(2.0),
        bias_std: float = 0.0,
    ) -> None:
        width = positive_int("width", width)
        super().__init__(
            [positive_int("input_dim", input_dim), width, positive_int("n_outputs", n_outputs)],
            activation="relu",
            weight_std=[float(weight_std), 1.0],
            bias_std=float(bias_std),
        )

    @property
    def hidden_neurons(self) -> int:
        return self.sizes[1]
