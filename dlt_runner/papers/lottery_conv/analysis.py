"""The paper's measurements as functions: accuracies, mask statistics, parameter counts,
constructed tickets and their subset-sum statistics (Burkholz 2022, experiments; official
``main_cnn.py``, ``main_perturb.py``, ``main_ssa_stats.py``)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from statistics import mean
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dlt_runner.core.errors import ConfigError, choose
from dlt_runner.nn.convnets import ConvNet
from dlt_runner.nn.masked import supermask_layers
from dlt_runner.papers.lottery_conv.constructions import (
    CONSTRUCTIONS,
    ConvLayer,
    TicketNet,
    construct_ticket,
    per_parameter_ticket,
)
from dlt_runner.papers.lottery_conv.subset_sum import subset_sum_statistics

TICKET_KINDS = (*CONSTRUCTIONS, "per_parameter")


@torch.no_grad()
def accuracy(net: nn.Module, x: Tensor, y: Tensor, batch_size: int = 2048) -> float:
    """Top-1 accuracy of ``net`` on (x, y), in batches."""
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = net(x[start : start + batch_size])
        correct += int((logits.argmax(-1) == y[start : start + batch_size]).sum())
    return correct / max(1, len(x))


def kept_fractions(net: nn.Module) -> list[float]:
    """Fraction of weights each masked layer keeps (edge-popup: equals ``keep``)."""
    return [layer.kept_fraction() for layer in supermask_layers(net)]


def source_params(net: nn.Module) -> int:
    """Weights and biases of the net, frozen random ones included (BatchNorm's too)."""
    masked = supermask_layers(net)
    frozen = sum(
        layer.weight.numel() + (0 if layer.bias is None else layer.bias.numel()) for layer in masked
    )
    scores = sum(p.numel() for layer in masked for p in layer.parameters())
    return frozen + sum(p.numel() for p in net.parameters()) - scores


def nonzero_params(net: nn.Module) -> int:
    """Parameters a net uses: kept weights of masked layers, non-zero entries elsewhere."""
    masked = supermask_layers(net)
    kept = sum(int(mask.sum()) for layer in masked for mask in layer.masks().values())
    scores = {id(p) for layer in masked for p in layer.parameters()}
    dense = sum(int((p != 0).sum()) for p in net.parameters() if id(p) not in scores)
    return kept + dense


@contextlib.contextmanager
def unmasked(net: nn.Module) -> Iterator[nn.Module]:
    """The random source net itself: every masked layer keeps all its weights (no scaling)."""
    layers = supermask_layers(net)
    saved = [layer.keep for layer in layers]
    for layer in layers:
        layer.keep = 1.0
    try:
        yield net
    finally:
        for layer, keep in zip(layers, saved, strict=True):
            layer.keep = keep


def conv_stack(net: nn.Module) -> tuple[list[ConvLayer], nn.Linear]:
    """The target's 3x3 ReLU convolutions and linear head, as the L+1/2L constructions need.

    Only the official ``conv`` target fits: a ``ConvNet`` without pooling, normalisation or
    hidden fully-connected layers, with ReLU.
    """
    fits = (
        isinstance(net, ConvNet)
        and net.pool_every is None
        and not net.hidden
        and not net.global_pool
        and isinstance(net.activation, nn.ReLU)
        and all(isinstance(norm, nn.Identity) for norm in net.norms)
        and all(type(conv) is nn.Conv2d and conv.stride == (1, 1) for conv in net.convs)
        and type(net.classifier) is nn.Linear
    )
    if not fits:
        raise ConfigError(
            "the l_plus_1 / two_l constructions need the ReLU conv target "
            "(papers.lottery_conv.nets.conv_target, masked: false); use per_parameter for "
            "residual nets"
        )
    layers = [
        ConvLayer(
            conv.weight.detach().double().cpu(),
            None if conv.bias is None else conv.bias.detach().double().cpu(),
        )
        for conv in net.convs
    ]
    return layers, net.classifier


def second_layer_targets(net: nn.Module, count: int = 300) -> np.ndarray:
    """The first ``count`` weights of the net's second convolution divided by their max |w|."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) < 2:
        raise ConfigError("subset-sum statistics take the second convolution's weights")
    weights = convs[1].weight.detach().double().cpu().reshape(-1)[:count]
    return (weights / weights.abs().max()).numpy()


def mean_and_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95 % half-width (1.96 std / sqrt(n), as the official scripts print)."""
    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2:
        return float(array.mean()), 0.0
    return float(array.mean()), float(1.96 * array.std(ddof=1) / math.sqrt(len(array)))


def ticket_report(
    net: nn.Module,
    kind: str,
    x: Tensor,
    y: Tensor,
    rho: int = 15,
    eps: float = 0.01,
    max_size: int = 10,
    repeats: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Build ``repeats`` tickets of the trained target ``net`` and evaluate them on (x, y).

    Returns, suffixed by the kind: ``ticket_acc`` (mean; ``_ci`` its 95 % half-width),
    ``ticket_nonzero_params``, ``target_nonzero_params`` (|w| > eps, conv part for the
    L+1/2L constructions as the official count), ``source_params`` (L+1/2L),
    ``ticket_agreement`` (fraction of test predictions equal to the target's),
    ``ticket_extra_units`` (redrawn problems), ``ticket_ssa_hit_rate``.
    """
    choose("ticket construction", kind, dict.fromkeys(TICKET_KINDS))
    target_predictions = _predictions(net, x)
    rows: dict[str, list[float]] = {}
    for repeat in range(int(repeats)):
        if kind == "per_parameter":
            ticket, stats = per_parameter_ticket(net, rho, eps, max_size, seed + repeat)
            row = {
                "ticket_nonzero_params": stats["ticket_nonzero_params"],
                "target_nonzero_params": stats["target_nonzero_params"],
                "ticket_ssa_hit_rate": stats["ssa_hit_rate"],
            }
        else:
            layers, head = conv_stack(net)
            built = construct_ticket(
                layers, kind, rho=rho, eps=eps, max_size=max_size, seed=seed + repeat
            )
            ticket = TicketNet(built, head).to(x.device)
            target_count = sum(
                int((layer.weight.abs() > eps).sum()) + int((layer.bias.abs() > eps).sum())
                for layer in layers
            )
            row = {
                "ticket_nonzero_params": float(built.nonzero_params()),
                "target_nonzero_params": float(target_count),
                "source_params": float(built.source_params),
                "ticket_extra_units": float(built.log.redraws),
                "ticket_ssa_hit_rate": 1.0 - built.log.misses / max(1, built.log.problems),
            }
        ticket = ticket.to(x.device).eval()
        row["ticket_acc"] = accuracy(ticket, x, y)
        agreement = _predictions(ticket, x) == target_predictions
        row["ticket_agreement"] = float(agreement.double().mean())
        for name, value in row.items():
            rows.setdefault(name, []).append(value)
    report = {f"{name}_{kind}": mean(values) for name, values in rows.items()}
    report[f"ticket_acc_ci_{kind}"] = mean_and_ci(rows["ticket_acc"])[1]
    return report


@torch.no_grad()
def _predictions(net: nn.Module, x: Tensor) -> Tensor:
    return torch.cat([net(x[i : i + 2048]).argmax(-1) for i in range(0, len(x), 2048)]).float()


def subset_sum_report(net: nn.Module, count: int, n: int, eps: float, seed: int) -> dict:
    """``main_ssa_stats.py`` on the trained target's second-layer weights (scaled to [-1, 1])."""
    return subset_sum_statistics(second_layer_targets(net, count), n=n, eps=eps, seed=seed)
