"""Amplification: the majority (plurality) vote over a CFNN's passes (Sieradzki et al. 2022, §1).

Repeating a randomised classifier whose pass is right with probability p > 1/2 (binary) and
taking the majority of n passes is right with probability P(Binomial(n, p) > n/2), which tends
to 1 as n grows: the amplification the paper's CFNNs rely on. :class:`MajorityVote` runs a
:class:`~dlt_runner.papers.coin_flipping.nets.StochasticNet` n times; :func:`majority_tail`
is that binomial tail, exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from dlt_runner.core.errors import ConfigError, positive_int, unknown_choice

#: How a pass turns its logits into a vote (``pass_labels``).
PASS_OUTPUTS = ("argmax", "sample")


def class_logits(logits: Tensor) -> Tensor:
    """Per-class logits ``(..., K)``, K >= 2: a binary logit l becomes the pair (0, l).

    softmax((0, l)) = (1 - sigmoid(l), sigmoid(l)), so binary and multi-class passes share one
    code path; argmax picks class 1 iff l > 0.
    """
    if logits.shape[-1] == 1:
        return torch.cat([torch.zeros_like(logits), logits], dim=-1)
    return logits


def pass_labels(logits: Tensor, output: str = "argmax", generator=None) -> Tensor:
    """Each pass's class from its logits (passes, batch, outputs).

    ``argmax``: the top class (binary: 1 iff the logit is positive). ``sample``: a final coin,
    the class drawn from the pass's softmax (binary: Bernoulli(sigmoid(l))) by the Gumbel-max
    trick, so that P(pass votes c | x) = E_z softmax_c exactly (the p_bar the losses train).
    """
    per_class = class_logits(logits)
    if check_pass_output(output) == "argmax":
        return per_class.argmax(dim=-1)
    uniform = torch.rand(
        per_class.shape, generator=generator, device=_device(generator, per_class.device)
    ).to(per_class.device)
    gumbel = -torch.log(-torch.log(uniform.clamp(min=1e-12, max=1.0 - 1e-7)))
    return (per_class.float() + gumbel).argmax(dim=-1)


def check_pass_output(output: str) -> str:
    """``output`` if it is one of ``PASS_OUTPUTS``, else a ConfigError listing them."""
    if output not in PASS_OUTPUTS:
        raise ConfigError(unknown_choice("pass output", output, PASS_OUTPUTS))
    return output


def _device(generator: torch.Generator | None, default: torch.device) -> torch.device:
    return generator.device if generator is not None else default


def n_classes(net) -> int:
    """Classes a net votes among: 2 for a single-logit (binary) net."""
    return max(2, int(net.n_outputs))


def pass_label_chunks(
    net, features: Tensor, passes: int, generator: torch.Generator | None, chunk: int
) -> Iterator[Tensor]:
    """Labels ``(passes_in_chunk, batch)`` of ``passes`` fresh passes, ``chunk`` at a time."""
    done = 0
    while done < passes:
        size = min(chunk, passes - done)
        noise = net.sample_noise(size, generator, features.device).to(features.dtype)
        yield pass_labels(net.head(features, noise), net.pass_output, generator)
        done += size


def label_counts(labels: Tensor, classes: int) -> Tensor:
    """Votes per class ``(batch, classes)`` of pass labels ``(passes, batch)``."""
    counts = torch.zeros(labels.shape[1], classes, dtype=torch.long, device=labels.device)
    return counts.scatter_add_(1, labels.T, torch.ones_like(labels.T))


def plurality(counts: Tensor) -> Tensor:
    """The most-voted class; ties go to the lowest class index (torch.argmax's first maximum)."""
    return counts.argmax(dim=1)


@dataclass
class VoteResult:
    """``counts`` (batch, K) votes per class; ``fraction`` = counts / n; ``label`` the winner."""

    counts: Tensor
    fraction: Tensor
    label: Tensor


class MajorityVote:
    """Inference wrapper: run a stochastic net ``n_votes`` times and take the plurality.

    For a binary net ``fraction[:, 1]`` is the share of passes voting class 1 and ``label`` the
    majority (odd ``n_votes`` cannot tie; an even tie goes to class 0). For K classes the label
    is the plurality of the per-pass argmax. The backbone's ``features`` run once per input;
    the passes run ``chunk`` at a time to bound memory. One noise draw per pass serves the whole
    batch (one sampled network classifies every input): each input's votes have the exact
    n-pass law, and different inputs' votes are dependent.

    Args:
        n_votes: passes per input.
        chunk: passes evaluated together.
    """

    def __init__(self, n_votes: int, chunk: int = 128) -> None:
        self.n_votes = positive_int("n_votes", n_votes)
        self.chunk = positive_int("chunk", chunk)

    @torch.no_grad()
    def __call__(self, net, x: Tensor, generator: torch.Generator | None = None) -> VoteResult:
        features = net.features(x)
        classes = n_classes(net)
        counts = torch.zeros(len(x), classes, dtype=torch.long, device=x.device)
        for labels in pass_label_chunks(net, features, self.n_votes, generator, self.chunk):
            counts += label_counts(labels, classes)
        return VoteResult(counts, counts.double() / self.n_votes, plurality(counts))


def majority_tail(p: Tensor, n: int) -> Tensor:
    """P(majority of n independent passes is right) = P(Binomial(n, p) > n/2), n odd.

    Exact up to float64 rounding (a sum over the binomial pmf); ``p`` of any shape. Odd n
    only: :class:`MajorityVote` breaks even ties toward class 0, which depends on the label.
    """
    n = positive_int("n", n)
    if n % 2 == 0:
        raise ConfigError(f"majority_tail needs an odd number of votes, got {n}")
    p = torch.as_tensor(p, dtype=torch.float64).clamp(0, 1).unsqueeze(-1)
    k = torch.arange(n // 2 + 1, n + 1, dtype=torch.float64, device=p.device)
    log_binomial = (
        torch.lgamma(torch.tensor(n + 1.0, dtype=torch.float64))
        - torch.lgamma(k + 1)
        - torch.lgamma(n - k + 1)
    )
    # xlogy: 0 * log(0) = 0, so p = 0 and p = 1 are exact.
    log_pmf = log_binomial + torch.xlogy(k, p) + torch.xlogy(n - k, 1 - p)
    return torch.exp(log_pmf).sum(-1)
