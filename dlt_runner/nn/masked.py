"""Supermask layers: frozen random weights, trainable scores, top-k mask (edge-popup).

Ramanujan et al. 2020, "What's Hidden in a Randomly Weighted Neural Network?" (CVPR; official
code allenai/hidden-networks, ``utils/conv_type.py``): every weight w of a randomly initialised
layer gets a real score s; the forward pass uses only the weights whose |s| is among the top
``keep`` fraction of the layer,

    W_eff = W ⊙ m(|s|) / sqrt(keep),   m = 1 on the top round(keep · n) entries of |s|, else 0,

and the backward pass treats m as the identity (straight-through estimator). The division by
sqrt(keep) restores the Kaiming variance of the pruned layer, as hidden-networks' ``scale_fan``
option does by scaling the initialisation to the kept fan-in.

The mask ranks ``scores.abs()`` inside autograd, so the straight-through gradient reaches s as
dL/dm ⊙ sign(s). Handing dL/dm to s itself (skipping the |.|) pushes negative scores the wrong
way: the mask then stays at chance level.

The random weights (and biases, if any) are buffers, not parameters: they move with the
module and are saved in its state dict, but ``parameters()`` (and so every optimiser) only
sees the scores, and they never receive a gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlt_runner.core.errors import ConfigError, choose

WEIGHT_INITS = ("kaiming_normal", "signed_constant")


def kept_count(numel: int, keep: float) -> int:
    """How many of ``numel`` entries a top-``keep`` mask keeps: round(keep · numel), at least 1."""
    return max(1, min(numel, round(keep * numel)))


class TopKMask(torch.autograd.Function):
    """m = 1 on the ``round(keep · n)`` largest entries of ``magnitudes``, 0 elsewhere.

    Backward is the straight-through estimator: the incoming gradient passes unchanged
    (Ramanujan et al. 2020, edge-popup update). Call it on ``scores.abs()``.
    """

    @staticmethod
    def forward(ctx, magnitudes: Tensor, keep: float) -> Tensor:
        flat = magnitudes.reshape(-1)
        top = torch.topk(flat, kept_count(flat.numel(), keep), sorted=False).indices
        mask = torch.zeros_like(flat)
        mask[top] = 1.0
        return mask.reshape(magnitudes.shape)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def topk_mask(scores: Tensor, keep: float) -> Tensor:
    """The edge-popup mask of ``scores`` with the straight-through gradient through |scores|."""
    return TopKMask.apply(scores.abs(), keep)


class _Supermask:
    """What MaskedConv2d and MaskedLinear share: frozen weight/bias buffers, scores, the mask."""

    keep: float
    scale: bool
    weight: Tensor
    bias: Tensor | None
    weight_scores: nn.Parameter
    bias_scores: nn.Parameter | None

    def _freeze(self, keep: float, weight_init: str, scale: bool, fan_in: int) -> None:
        if not 0.0 < float(keep) <= 1.0:
            raise ConfigError(f"masked layer keep must be in (0, 1], got {keep}")
        choose("weight_init", weight_init, dict.fromkeys(WEIGHT_INITS))
        self.keep = float(keep)
        self.scale = bool(scale)
        self.weight_init = weight_init
        weight = self.weight.detach().clone()
        bias = None if self.bias is None else self.bias.detach().clone()
        del self.weight
        del self.bias
        # Kaiming normal, fan-in, ReLU gain (hidden-networks' default ``--init kaiming_normal``);
        # signed constant: ±(the same std) with random signs (their ``signed_constant``).
        std = math.sqrt(2.0 / fan_in)
        weight.normal_(0.0, std)
        if weight_init == "signed_constant":
            weight = weight.sign() * std
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        # hidden-networks: scores ~ kaiming_uniform_(a=sqrt(5)) = U(±1/sqrt(fan_in))
        bound = 1.0 / math.sqrt(fan_in)
        self.weight_scores = nn.Parameter(torch.empty_like(weight).uniform_(-bound, bound))
        self.bias_scores = (
            None if bias is None else nn.Parameter(torch.empty_like(bias).uniform_(-bound, bound))
        )

    def masks(self) -> dict[str, Tensor]:
        """The current 0/1 masks (no gradient), keyed ``weight`` (and ``bias``)."""
        with torch.no_grad():
            masks = {"weight": topk_mask(self.weight_scores, self.keep)}
            if self.bias_scores is not None:
                masks["bias"] = topk_mask(self.bias_scores, self.keep)
        return masks

    def kept_fraction(self) -> float:
        """Fraction of the weights the mask keeps (equals ``keep`` up to rounding)."""
        mask = self.masks()["weight"]
        return float(mask.sum()) / mask.numel()

    def masked_weight(self) -> Tensor:
        """W ⊙ m(|s|) / sqrt(keep), differentiable in the scores."""
        weight = self.weight * topk_mask(self.weight_scores, self.keep)
        return weight / math.sqrt(self.keep) if self.scale else weight

    def masked_bias(self) -> Tensor | None:
        if self.bias is None:
            return None
        bias = self.bias * topk_mask(self.bias_scores, self.keep)
        return bias / math.sqrt(self.keep) if self.scale else bias


class MaskedConv2d(_Supermask, nn.Conv2d):
    """``nn.Conv2d`` over frozen random weights whose top-``keep`` |score| entries are used.

    Same signature as ``nn.Conv2d`` (drop-in for a net's ``conv_layer`` factory) plus:

    Args:
        keep: fraction k of the weights kept per layer (hidden-networks' ``prune_rate``; 0.5).
        weight_init: ``kaiming_normal`` or ``signed_constant`` (Ramanujan et al. 2020).
        scale: divide the masked weights by sqrt(keep).
        bias: a frozen random bias (PyTorch's default init), masked the same way; edge-popup
            nets have none (default False).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        padding_mode: str = "zeros",
        keep: float = 0.5,
        weight_init: str = "kaiming_normal",
        scale: bool = True,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
        )
        fan_in = (in_channels // groups) * math.prod(self.kernel_size)
        self._freeze(keep, weight_init, scale, fan_in)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.masked_weight(), self.masked_bias())


class MaskedLinear(_Supermask, nn.Linear):
    """``nn.Linear`` over frozen random weights whose top-``keep`` |score| entries are used.

    Arguments as :class:`MaskedConv2d` (``bias`` default False, as in edge-popup).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        keep: float = 0.5,
        weight_init: str = "kaiming_normal",
        scale: bool = True,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self._freeze(keep, weight_init, scale, in_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.masked_weight(), self.masked_bias())


def supermask_layers(module: nn.Module) -> list[_Supermask]:
    """Every masked layer inside ``module``, in module order."""
    return [layer for layer in module.modules() if isinstance(layer, _Supermask)]
