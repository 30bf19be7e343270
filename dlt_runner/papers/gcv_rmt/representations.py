"""The representations KRR regresses on, each a kernel of the inputs, picked by name.

Paper: empirical NTKs of ImageNet-pretrained and randomly initialised ResNets, and the kernels
of their representations, on CIFAR. CPU scale: the same list on an MLP, plus two baselines
without a network (raw pixels, random ReLU features).

Every representation maps (x_train (n, ...), x_test (m, ...)) to the float64 pair
(K_train (n, n), K_test,train (m, n)); the analysis normalises and regresses on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from dlt_runner.core.errors import ConfigError, choose, positive_int
from dlt_runner.theory.entk import empirical_ntk


class Representation(Protocol):
    def gram(self, x_train: Tensor, x_test: Tensor) -> tuple[Tensor, Tensor]:
        """(K_train (n, n), K_test,train (m, n)) in float64."""
        ...


def _feature_gram(features_train: Tensor, features_test: Tensor) -> tuple[Tensor, Tensor]:
    features_train, features_test = features_train.double(), features_test.double()
    return features_train @ features_train.T, features_test @ features_train.T


class RawLinear:
    """K(x, x') = <x, x'> / d on the flattened, normalised inputs: ridge regression on pixels."""

    def gram(self, x_train: Tensor, x_test: Tensor) -> tuple[Tensor, Tensor]:
        x_train, x_test = x_train.flatten(1), x_test.flatten(1)
        scale = math.sqrt(x_train.shape[1])
        return _feature_gram(x_train / scale, x_test / scale)


class RandomReluFeatures:
    """Phi(x) = relu(x W) / sqrt(width) with W ~ N(0, weight_std^2), a fixed random draw.

    Defaults: width 2,000 and W ~ N(0, 1/64) on the 64 digit pixels; weight_std None means
    1 / sqrt(d), the same scale for any input dimension d. No bias, so the kernel's scale (and
    hence weight_std) drops out after the trace normalisation; only its shape matters.
    """

    def __init__(self, width: int = 2000, weight_std: float | None = None, seed: int = 0) -> None:
        self.width = positive_int("random features width", width)
        self.weight_std = weight_std
        self.seed = int(seed)

    def weights(self, dimension: int, device: torch.device) -> Tensor:
        """W (d, width): drawn on the CPU from ``seed``, so every device sees the same features."""
        std = 1.0 / math.sqrt(dimension) if self.weight_std is None else float(self.weight_std)
        generator = torch.Generator().manual_seed(self.seed)
        weights = torch.randn(dimension, self.width, generator=generator, dtype=torch.float64)
        return (std * weights).to(device)

    def features(self, x: Tensor, weights: Tensor) -> Tensor:
        return torch.relu(x.flatten(1).double() @ weights) / math.sqrt(self.width)

    def gram(self, x_train: Tensor, x_test: Tensor) -> tuple[Tensor, Tensor]:
        weights = self.weights(x_train.flatten(1).shape[1], x_train.device)
        return _feature_gram(self.features(x_train, weights), self.features(x_test, weights))


class EmpiricalNTK:
    """Theta(x, x') = <d F(x)/d theta, d F(x')/d theta> with F = sum_c f_c, the logit sum.

    The kernel of the network's scalar output sum over all its parameters (the paper's "kernel
    of the logit sum"). The official code (aw31/empirical-ntks) replaces the classifier with a
    fresh one-output linear head instead; both give one scalar function per network.
    Computed by `dlt_runner.theory.entk.empirical_ntk` in Jacobian blocks of ``block_bytes``.
    """

    def __init__(
        self, net: nn.Module, dtype: torch.dtype = torch.float64, block_bytes: int = 2**27
    ) -> None:
        self.net = net
        self.dtype = dtype
        self.block_bytes = int(block_bytes)

    def gram(self, x_train: Tensor, x_test: Tensor) -> tuple[Tensor, Tensor]:
        # Every parameter, named explicitly: the frozen copy of the initial weights has
        # requires_grad=False, and its kernel must still differentiate all of them.
        names = [name for name, _ in self.net.named_parameters()]
        kernel = empirical_ntk(
            self.net,
            torch.cat([x_train, x_test]),
            x_train,
            output="sum",
            parameters=names,
            block_bytes=self.block_bytes,
            dtype=self.dtype,
        )
        n = len(x_train)
        return kernel[:n].double(), kernel[n:].double()


class PenultimateFeatures:
    """K = Phi Phi^T with Phi the network's features before its readout layer.

    Uses ``net.features`` (e.g. `dlt_runner.nn.MLP`), or all but the last layer of an
    ``nn.Sequential``.
    """

    def __init__(self, net: nn.Module) -> None:
        if not (hasattr(net, "features") or isinstance(net, nn.Sequential)):
            raise ValueError(
                f"{type(net).__name__} has no `features` method and is not an nn.Sequential; "
                "penultimate features need one of the two"
            )
        self.net = net

    def features(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            if hasattr(self.net, "features"):
                return self.net.features(x).flatten(1)
            return self.net[:-1](x).flatten(1)

    def gram(self, x_train: Tensor, x_test: Tensor) -> tuple[Tensor, Tensor]:
        return _feature_gram(self.features(x_train), self.features(x_test))


@dataclass
class RepresentationSources:
    """What the representations are built from.

    ``initial_net`` is the architecture at its initial weights (a copy kept before
    pre-training); ``pretrained_net`` the same network after pre-training.
    """

    initial_net: nn.Module
    pretrained_net: nn.Module
    random_features_width: int = 2000
    random_features_std: float | None = None
    seed: int = 0
    ntk_dtype: torch.dtype = torch.float64
    ntk_block_bytes: int = 2**27


def _random_features(sources: RepresentationSources) -> Representation:
    return RandomReluFeatures(
        sources.random_features_width, sources.random_features_std, sources.seed
    )


def _entk(net: nn.Module, sources: RepresentationSources) -> Representation:
    return EmpiricalNTK(net, sources.ntk_dtype, sources.ntk_block_bytes)


REPRESENTATIONS: dict[str, Callable[[RepresentationSources], Representation]] = {
    "raw_linear": lambda sources: RawLinear(),
    "random_relu_features": _random_features,
    "entk_init": lambda sources: _entk(sources.initial_net, sources),
    "entk_pretrained": lambda sources: _entk(sources.pretrained_net, sources),
    "features_init": lambda sources: PenultimateFeatures(sources.initial_net),
    "features_pretrained": lambda sources: PenultimateFeatures(sources.pretrained_net),
}


def build_representations(
    names: Iterable[str], sources: RepresentationSources
) -> dict[str, Representation]:
    """{name: representation} in the given order; an unknown name lists the valid ones."""
    names = list(names)
    if not names:
        raise ConfigError(f"no representations chosen; choose from: {', '.join(REPRESENTATIONS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"representations listed twice: {names}")
    return {name: choose("representation", name, REPRESENTATIONS)(sources) for name in names}
