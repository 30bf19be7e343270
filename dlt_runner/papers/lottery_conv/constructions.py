"""Strong lottery tickets built by pruning a random source net (Burkholz 2022).

A target CNN ``x -> relu(conv_L(... relu(conv_1(x)) ...)) -> head`` (3x3 convolutions,
padding 1, biases, ReLU) is rebuilt as a subnetwork of a wider random net, one subset-sum
problem per target parameter (:mod:`.subset_sum`). The layout follows the official
``Utils/pruning.py`` (RelationalML/LT-existence):

- **input pair** (``prune_layer_first``): a 1x1 convolution turns every input channel i
  into ``rho_first`` units relu(a_ik x_i), a ~ U(-2, 2), plus ``rho_first`` constant units
  relu(c_k) = c_k, c ~ U(0, 2) (their bias). The following 3x3 convolution rebuilds target
  weight w from the units with a > 0 (sum of v a over a subset ≈ w, so the units add up to
  w relu(x)) and, separately, from those with a < 0 (adding -w relu(-x)): together w x,
  whatever the sign of x (ReLU: relu(x) - relu(-x) = x). The bias is a subset sum of v c.
- **copy layer** (``prune_layer``): when the input holds ``rho`` copies of each target
  channel and ``rho`` constant-1 units, each output copy rebuilds w as a subset sum of the
  random weights v ~ U(-1, 1) from the copies of its input channel, the bias from the
  constants, and the next ``rho`` constant units as a subset sum ≈ 1.

**L+1** (``prune_conv``): input pair for conv_1 (``rho`` output copies + constants),
copy layers for conv_2..conv_L; the last one has one copy and no constants, so the target's
head applies unchanged. **2L** (``prune_conv_2L``): an input pair (one copy, no constants)
per target layer.

Differences from the official code (reconstruction): biases and constants use only the
kernel's centre tap, which reads the pixel itself, so a constant channel is exact at the
zero-padded border too; a problem no subset of ``max_base`` numbers solves within eps keeps
its best subset and is counted as a miss (the official code redraws it as one more unit:
``extra_units`` reports that count); layers are first rescaled by ReLU's positive homogeneity
so that every target weight and bias lies in [-1, 1] (the head undoes it exactly).

Pruned entries of the random source net are never read by the ticket, so only the kept ones
are drawn; ``source_params`` counts the dense source net.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from dlt_runner.core.errors import ConfigError, choose
from dlt_runner.papers.lottery_conv.subset_sum import (
    MAX_BASE,
    SubsetSumResult,
    solve_subset_sum,
)

#: Fresh draws tried for a problem its base set misses (official ``solve_subset_sum`` recurses
#: until it hits); each counts as one more random unit of the source net.
MAX_REDRAWS = 50

CONSTRUCTIONS = ("l_plus_1", "two_l")


@dataclass
class ConvLayer:
    """One convolution of a ticket or target: ``weight`` (out, in, k, k), ``bias`` (out,)."""

    weight: Tensor
    bias: Tensor | None = None


@dataclass
class SolveLog:
    """Subset-sum bookkeeping of one construction."""

    problems: int = 0
    misses: int = 0
    redraws: int = 0
    subset_sizes: list[Tensor] = field(default_factory=list)

    def add(self, result: SubsetSumResult, redraws: int = 0) -> None:
        self.problems += len(result.error)
        self.misses += int((~result.hit).sum())
        self.redraws += redraws
        self.subset_sizes.append(result.size.double())

    def mean_subset_size(self) -> float:
        sizes = torch.cat(self.subset_sizes) if self.subset_sizes else torch.zeros(1)
        return float(sizes.mean())


@dataclass
class Ticket:
    """A constructed ticket: its convolutions (zeros where pruned), head scale, statistics."""

    layers: list[ConvLayer]
    source_params: int
    head_scale: float
    log: SolveLog

    def nonzero_params(self) -> int:
        """Non-zero conv weights and biases (the shared head excluded, as the official code)."""
        total = 0
        for layer in self.layers:
            total += int((layer.weight != 0).sum())
            if layer.bias is not None:
                total += int((layer.bias != 0).sum())
        return total


def _uniform(shape, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def _centre(weight: Tensor) -> int:
    height, width = weight.shape[2:]
    return (height // 2) * width + width // 2


def _bias_or_zeros(layer: ConvLayer) -> Tensor:
    if layer.bias is None:
        return torch.zeros(layer.weight.shape[0], dtype=torch.float64)
    return layer.bias.double()


def rescale_for_subset_sum(layers: list[ConvLayer]) -> tuple[list[ConvLayer], float]:
    """Divide layer l by s_l = max(1, max|W_l|, max|b_l| / C_{l-1}) so that |w|, |b| <= 1.

    With C_l = s_1 ... s_l, relu(W_l h + b_l) / C_l = relu(W_l / s_l · h / C_{l-1} + b_l / C_l):
    the rescaled net computes the target's last feature map divided by C_L, and the head
    multiplied by C_L (returned) computes the same logits (ReLU is positively homogeneous).
    """
    cumulative, rescaled = 1.0, []
    for layer in layers:
        weight = layer.weight.double()
        bias = _bias_or_zeros(layer)
        scale = max(1.0, float(weight.abs().max()), float(bias.abs().max()) / cumulative)
        cumulative *= scale
        rescaled.append(ConvLayer(weight / scale, bias / cumulative))
    return rescaled, cumulative


def _solve(
    targets: Tensor,
    draw: Callable[[Tensor], tuple[Tensor, Tensor]],
    eps: float,
    max_size: int,
    log: SolveLog,
    valid: Tensor | None = None,
) -> tuple[Tensor, SubsetSumResult]:
    """Solve with fresh random weights for every miss, up to MAX_REDRAWS rounds.

    ``draw(problems)`` returns fresh (random weights, base sets built from them) for those
    problem indices. Returns the random weights finally used and the result (a problem still
    missing keeps its best draw).
    """
    weights, bases = draw(torch.arange(len(targets)))
    result = solve_subset_sum(targets, bases, eps, max_size=max_size, valid=valid)
    redraws = 0
    for _ in range(MAX_REDRAWS):
        missed = torch.nonzero(~result.hit).squeeze(1)
        if len(missed) == 0:
            break
        redraws += len(missed)
        new_weights, new_bases = draw(missed)
        retry = solve_subset_sum(
            targets[missed],
            new_bases,
            eps,
            max_size=max_size,
            valid=None if valid is None else valid[missed],
        )
        better = missed[retry.error < result.error[missed]]
        keep = retry.error < result.error[missed]
        weights[better] = new_weights[keep]
        for name in ("chosen", "approximation", "error", "size", "hit"):
            getattr(result, name)[better] = getattr(retry, name)[keep]
    log.add(result, redraws)
    return weights, result


def _place(
    weight: Tensor, rows: Tensor, columns: Tensor, taps: Tensor, values: Tensor, chosen: Tensor
) -> None:
    """weight[rows[p], columns[p, m], taps[p]] = values[p, m] where chosen[p, m]."""
    problem, member = torch.nonzero(chosen, as_tuple=True)
    weight[rows[problem], columns[problem, member], taps[problem]] = values[problem, member]


def _grid(*sizes: int) -> list[Tensor]:
    return [axis.reshape(-1) for axis in torch.meshgrid(*map(torch.arange, sizes), indexing="ij")]


def _constant_problems(
    weight: Tensor,
    target_values: Tensor,
    rows: Tensor,
    centre: int,
    constant_columns: Tensor,
    constant_values: Tensor,
    eps: float,
    max_size: int,
    log: SolveLog,
    generator: torch.Generator,
) -> None:
    """Rebuild ``target_values[p]`` in row ``rows[p]`` from the constant units (centre tap)."""
    if len(rows) == 0:
        return

    def draw(problems: Tensor) -> tuple[Tensor, Tensor]:
        weights = _uniform((len(problems), len(constant_columns)), -1.0, 1.0, generator)
        return weights, weights * constant_values

    random_weights, result = _solve(target_values, draw, eps, max_size, log)
    columns = constant_columns.expand(len(rows), -1)
    taps = torch.full_like(rows, centre)
    _place(weight, rows, columns, taps, random_weights, result.chosen)


def input_pair(
    target: ConvLayer,
    rho_first: int,
    rho_out: int,
    constants: bool,
    eps: float,
    max_size: int,
    log: SolveLog,
    generator: torch.Generator,
) -> tuple[ConvLayer, ConvLayer]:
    """1x1 spreading layer and the 3x3 layer rebuilding ``target`` (official prune_layer_first).

    Output units: copy k of target channel j is unit j·rho_out + k; with ``constants`` the
    last rho_out units output ≈ 1.
    """
    n_out, n_in = target.weight.shape[:2]
    taps = target.weight[0, 0].numel()
    spread = _uniform((n_in, rho_first), -2.0, 2.0, generator)
    constant_bias = _uniform((rho_first,), 0.0, 2.0, generator)
    units_in = rho_first * (n_in + 1)
    first = torch.zeros(units_in, n_in, 1, 1, dtype=torch.float64)
    first[torch.arange(n_in * rho_first), torch.arange(n_in).repeat_interleave(rho_first), 0, 0] = (
        spread.reshape(-1)
    )
    first_bias = torch.zeros(units_in, dtype=torch.float64)
    first_bias[n_in * rho_first :] = constant_bias

    units_out = rho_out * (n_out + int(constants))
    second = torch.zeros(units_out, units_in, taps, dtype=torch.float64)
    flat_target = target.weight.reshape(n_out, n_in, taps)
    j, k, i, t = _grid(n_out, rho_out, n_in, taps)
    rows = j * rho_out + k
    for sign in (1.0, -1.0):
        # the units relu(a x_i) with sign(a) = sign, at most MAX_BASE of them per channel
        members = torch.zeros(n_in, MAX_BASE, dtype=torch.long)
        valid = torch.zeros(n_in, MAX_BASE, dtype=torch.bool)
        for channel in range(n_in):
            index = torch.nonzero(sign * spread[channel] > 0).squeeze(1)[:MAX_BASE]
            members[channel, : len(index)] = index
            valid[channel, : len(index)] = True
        spread_members = spread.gather(1, members)[i]

        def draw(problems: Tensor, spread_of: Tensor = spread_members) -> tuple[Tensor, Tensor]:
            weights = _uniform((len(problems), MAX_BASE), -1.0, 1.0, generator)
            return weights, weights * spread_of[problems]

        random_weights, result = _solve(
            flat_target[j, i, t], draw, eps, max_size, log, valid=valid[i]
        )
        _place(second, rows, i[:, None] * rho_first + members[i], t, random_weights, result.chosen)

    n_constants = min(rho_first, MAX_BASE)
    constant_columns = n_in * rho_first + torch.arange(n_constants)
    bias = _bias_or_zeros(target)
    j, k = _grid(n_out, rho_out)
    solve = (constant_columns, constant_bias[:n_constants], eps, max_size, log, generator)
    centre = _centre(target.weight)
    _constant_problems(second, bias[j], j * rho_out + k, centre, *solve)
    if constants:
        ones = torch.ones(rho_out, dtype=torch.float64)
        _constant_problems(second, ones, n_out * rho_out + torch.arange(rho_out), centre, *solve)
    shape = (units_out, units_in, *target.weight.shape[2:])
    return ConvLayer(first, first_bias), ConvLayer(second.reshape(shape), None)


def copy_layer(
    target: ConvLayer,
    rho_in: int,
    rho_out: int,
    constants: bool,
    eps: float,
    max_size: int,
    log: SolveLog,
    generator: torch.Generator,
) -> ConvLayer:
    """The 3x3 layer on ``rho_in`` copies + ``rho_in`` constants (official prune_layer)."""
    n_out, n_in = target.weight.shape[:2]
    taps = target.weight[0, 0].numel()
    units_in = rho_in * (n_in + 1)
    units_out = rho_out * (n_out + int(constants))
    weight = torch.zeros(units_out, units_in, taps, dtype=torch.float64)
    n_base = min(rho_in, MAX_BASE)
    flat_target = target.weight.reshape(n_out, n_in, taps)
    j, k, i, t = _grid(n_out, rho_out, n_in, taps)

    def draw(problems: Tensor) -> tuple[Tensor, Tensor]:
        weights = _uniform((len(problems), n_base), -1.0, 1.0, generator)
        return weights, weights

    random_weights, result = _solve(flat_target[j, i, t], draw, eps, max_size, log)
    columns = i[:, None] * rho_in + torch.arange(n_base)
    _place(weight, j * rho_out + k, columns, t, random_weights, result.chosen)

    constant_columns = n_in * rho_in + torch.arange(n_base)
    ones_in = torch.ones(n_base, dtype=torch.float64)
    bias = _bias_or_zeros(target)
    j, k = _grid(n_out, rho_out)
    solve = (constant_columns, ones_in, eps, max_size, log, generator)
    centre = _centre(target.weight)
    _constant_problems(weight, bias[j], j * rho_out + k, centre, *solve)
    if constants:
        ones = torch.ones(rho_out, dtype=torch.float64)
        _constant_problems(weight, ones, n_out * rho_out + torch.arange(rho_out), centre, *solve)
    return ConvLayer(weight.reshape(units_out, units_in, *target.weight.shape[2:]), None)


def construct_ticket(
    target_layers: list[ConvLayer],
    construction: str = "l_plus_1",
    rho: int = 15,
    rho_first: int | None = None,
    eps: float = 0.01,
    max_size: int = 10,
    seed: int = 0,
) -> Ticket:
    """Prune a random source net down to a ticket of the ReLU conv stack ``target_layers``.

    Args:
        construction: ``l_plus_1`` (one extra 1x1 layer) or ``two_l`` (a 1x1 + 3x3 pair per
            target layer).
        rho: base-set size / copies per target channel (official ``--ssa_size``, 15).
        rho_first: units per input channel of an input pair (official: 2·rho for ReLU).
        eps: tolerated error per parameter (official ``--error``, 0.01).
        max_size: largest subset (official search bound, 10).
        seed: seeds the random source weights.
    """
    choose("construction", construction, dict.fromkeys(CONSTRUCTIONS))
    rho_first = 2 * rho if rho_first is None else int(rho_first)
    generator = torch.Generator().manual_seed(int(seed))
    layers, head_scale = rescale_for_subset_sum(target_layers)
    log = SolveLog()
    ticket: list[ConvLayer] = []
    count = len(layers)
    if construction == "two_l":
        for layer in layers:
            ticket.extend(input_pair(layer, rho_first, 1, False, eps, max_size, log, generator))
    else:
        last = count == 1
        rho_out = 1 if last else rho
        ticket.extend(
            input_pair(layers[0], rho_first, rho_out, not last, eps, max_size, log, generator)
        )
        for index, layer in enumerate(layers[1:], start=2):
            last = index == count
            rho_out = 1 if last else rho
            ticket.append(copy_layer(layer, rho, rho_out, not last, eps, max_size, log, generator))
    source = sum(
        layer.weight.numel() + (0 if layer.bias is None else layer.bias.numel()) for layer in ticket
    )
    return Ticket(ticket, source, head_scale, log)


class TicketNet(nn.Module):
    """The ticket as a network: its convolutions with ReLU, then the target's head.

    ``head`` maps the flattened last feature map to logits (the target's classifier); its
    weight is multiplied by ``ticket.head_scale`` (see :func:`rescale_for_subset_sum`).
    """

    def __init__(self, ticket: Ticket, head: nn.Linear) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        for layer in ticket.layers:
            out_channels, in_channels, kernel = layer.weight.shape[:3]
            conv = nn.Conv2d(
                in_channels, out_channels, kernel, padding=kernel // 2, bias=layer.bias is not None
            )
            conv.weight.data = layer.weight.float().clone()
            if layer.bias is not None:
                conv.bias.data = layer.bias.float().clone()
            self.convs.append(conv)
        self.head = copy.deepcopy(head)
        with torch.no_grad():
            self.head.weight.mul_(ticket.head_scale)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.relu(conv(x))
        return self.head(x.flatten(1))


def per_parameter_ticket(
    net: nn.Module, rho: int = 15, eps: float = 0.01, max_size: int = 10, seed: int = 0
) -> tuple[nn.Module, dict[str, float]]:
    """The target with every conv/linear parameter replaced by its subset-sum approximation.

    The official residual-net experiment (``main_perturb.py``) evaluates a ResNet ticket this
    way: each parameter of a ticket is within eps of the target's, and the ticket needs about
    (subset size) x (copies) random weights per target parameter. Here each parameter w of a
    layer with scale s = max(1, max|w|) is replaced by s times a subset sum of rho U(-1, 1)
    numbers approximating w / s (the first layer's base elements are products of two, as in
    its 2L statistics); normalisation layers are kept. Parameters counted as in the official
    script: subset size x 2 in the first layer, x 1 in the last, x rho elsewhere.
    """
    ticket = copy.deepcopy(net)
    generator = torch.Generator().manual_seed(int(seed))
    layers = [m for m in ticket.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise ConfigError("per_parameter_ticket needs a net with Conv2d or Linear layers")
    log = SolveLog()
    ticket_params = 0.0
    target_params = 0
    for index, layer in enumerate(layers):
        factor = 2 if index == 0 else (1 if index == len(layers) - 1 else rho)
        for parameter in (layer.weight, layer.bias):
            if parameter is None:
                continue
            values = parameter.detach().double().cpu().reshape(-1)
            scale = max(1.0, float(values.abs().max()))
            bases = _uniform((len(values), rho), -1.0, 1.0, generator)
            if index == 0:
                bases = bases * _uniform((len(values), rho), -1.0, 1.0, generator)
            result = solve_subset_sum(values / scale, bases, eps, max_size=max_size)
            log.add(result)
            with torch.no_grad():
                parameter.copy_(
                    (result.approximation * scale).reshape(parameter.shape).to(parameter)
                )
            ticket_params += float(result.size.sum()) * factor
            target_params += int((values.abs() > eps).sum())
    return ticket, {
        "ticket_nonzero_params": ticket_params,
        "target_nonzero_params": float(target_params),
        "ssa_hit_rate": 1.0 - log.misses / max(1, log.problems),
        "ssa_mean_subset_size": log.mean_subset_size(),
    }
