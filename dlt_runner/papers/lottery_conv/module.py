"""Training targets and edge-popup supermasks; building and scoring tickets at the end.

One module serves both routes to a strong lottery ticket (Burkholz 2022; Ramanujan et al.
2020): with dense layers it trains the target nets (the accuracy a ticket must match) and,
after fit, constructs L+1 / 2L / per-parameter tickets of them by subset sum; with masked
layers it trains only the scores of frozen random nets (edge-popup), and the kept subnetwork
is the ticket. ``net`` is a :class:`~dlt_runner.papers.lottery_conv.nets.NetGrid`: all its
members train on the same minibatches, each on its own cross-entropy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import mean
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, choose
from dlt_runner.core.module import RunnerModule
from dlt_runner.data.transforms import Transform
from dlt_runner.nn.masked import supermask_layers
from dlt_runner.papers.lottery_conv.analysis import (
    TICKET_KINDS,
    accuracy,
    kept_fractions,
    nonzero_params,
    source_params,
    subset_sum_report,
    ticket_report,
    unmasked,
)
from dlt_runner.papers.lottery_conv.nets import NetGrid


class LotteryModule(RunnerModule):
    """Cross-entropy on every member of a ``NetGrid``; tickets and their accuracy after fit.

    Logged per evaluation: ``loss`` and ``acc`` (means over members). ``analysis`` (test
    split, final nets): ``acc_vs_width`` (mean over seeds per width; curve ``widths``),
    ``acc_per_net``; for masked nets ``ticket_acc`` (mean accuracy at the widest width),
    ``random_acc`` (the same random nets unpruned: chance level), ``kept_fraction_per_layer``
    and ``kept_fraction_max_error`` (|kept - keep|, every layer of every member),
    ``ticket_nonzero_params`` / ``source_params`` per width; for dense nets ``target_acc``
    (mean over members) and ``target_params``; with ``ssa_targets > 0`` the subset-sum
    statistics of the first member's second-layer weights (``ssa_*``); for every kind in
    ``tickets`` the constructed tickets' accuracy and size (``analysis.ticket_report``).

    Args:
        net: a ``NetGrid``.
        tickets: constructions applied to the first member after fit: ``l_plus_1``,
            ``two_l`` (ReLU conv targets) and/or ``per_parameter`` (any net); dense nets only.
        rho: subset-sum base size / copies per channel (official ``--ssa_size``, 15).
        eps: tolerated error per parameter (official ``--error``, 0.01).
        max_subset_size: largest subset searched (official bound, 10).
        ticket_repeats: independent tickets per construction (official ``--rep``, 5).
        ssa_targets: how many second-layer weights the subset-sum statistics use (0: none).
        ssa_base_size: base-set size n of those statistics (15).
        seed: seeds the ticket constructions and subset-sum base sets (``${seed}``).
        augmentation: optional on-device transform of training inputs, called as
            ``t(x, generator)`` (e.g. ``dlt_runner.data.transforms.RandomCropFlip`` for CIFAR).
    """

    def __init__(
        self,
        net: NetGrid,
        tickets: Sequence[str] = (),
        rho: int = 15,
        eps: float = 0.01,
        max_subset_size: int = 10,
        ticket_repeats: int = 1,
        ssa_targets: int = 0,
        ssa_base_size: int = 15,
        seed: int = 0,
        augmentation: Transform | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(net=net, **kwargs)
        if not isinstance(net, NetGrid):
            raise ConfigError("model.net must be a dlt_runner.papers.lottery_conv.nets.NetGrid")
        for kind in tickets:
            choose("ticket construction", kind, dict.fromkeys(TICKET_KINDS))
        self.tickets = list(tickets)
        self.masked = bool(supermask_layers(net))
        if self.masked and self.tickets:
            raise ConfigError(
                "model.tickets construct tickets of trained dense targets; a masked net is "
                "its own ticket: set model.tickets=[]"
            )
        self.rho, self.eps = int(rho), float(eps)
        self.max_subset_size = int(max_subset_size)
        self.ticket_repeats = int(ticket_repeats)
        self.ssa_targets, self.ssa_base_size = int(ssa_targets), int(ssa_base_size)
        self.seed = int(seed)
        self.augmentation = augmentation

    # ----------------------------------------------------------------- objective
    def _losses(self, batch: Batch, train: bool = False) -> tuple[Tensor, Tensor]:
        x = batch["x"]
        if train and self.augmentation is not None:
            x = self.augmentation(x, self.step_generator())
        logits = self.net(x)  # (members, batch, classes)
        members, size = logits.shape[:2]
        labels = batch["y"].repeat(members)
        losses = F.cross_entropy(logits.reshape(members * size, -1), labels, reduction="none")
        return losses.reshape(members, size).mean(1), logits

    def loss(self, batch: Batch, *optimizer_name: str) -> tuple[Tensor, dict[str, Tensor]]:
        # Summing keeps every member's gradient that of its own loss (train/loss is the sum).
        losses = self._losses(batch, train=True)[0]
        return losses.sum(), {"loss_per_net": losses.detach().mean()}

    def evaluate(self, batch: Batch, split: str) -> Mapping[str, Tensor]:
        losses, logits = self._losses(batch)
        correct = (logits.argmax(-1) == batch["y"]).float().mean(1)
        return {"loss": losses.mean(), "acc": correct.mean()}

    # ----------------------------------------------------------------- analysis
    @torch.no_grad()
    def analysis(self, datamodule: Any) -> dict[str, Any]:
        was_training = self.net.training
        self.net.eval()
        test = {k: v.to(self.device) for k, v in datamodule.tensors("test").items()}
        x = test["x"].to(next(iter(self.net.parameters())).dtype)
        y = test["y"]
        grid: NetGrid = self.net
        results: dict[str, Any] = {}
        per_net = {key: accuracy(member, x, y) for key, member in grid.members.items()}
        by_width = [mean(per_net[grid.key(w, s)] for s in grid.seed_offsets) for w in grid.widths]
        results["widths"] = [float(w) for w in grid.widths]
        results["acc_vs_width"] = by_width
        results["acc_per_net"] = list(per_net.values())
        results["acc"] = mean(per_net.values())
        widest = [grid.members[grid.key(grid.widths[-1], s)] for s in grid.seed_offsets]
        params_by_width = [grid.members[grid.key(w, grid.seed_offsets[0])] for w in grid.widths]
        if self.masked:
            results["ticket_acc"] = by_width[-1]
            random = []
            for member in widest:
                with unmasked(member):
                    random.append(accuracy(member, x, y))
            results["random_acc"] = mean(random)
            layers = [layer for m in grid.members.values() for layer in supermask_layers(m)]
            results["kept_fraction_per_layer"] = kept_fractions(widest[0])
            results["kept_fraction_max_error"] = max(
                abs(layer.kept_fraction() - layer.keep) for layer in layers
            )
            results["ticket_nonzero_params_vs_width"] = [
                float(nonzero_params(m)) for m in params_by_width
            ]
            results["source_params_vs_width"] = [float(source_params(m)) for m in params_by_width]
            results["ticket_nonzero_params"] = results["ticket_nonzero_params_vs_width"][-1]
            results["source_params"] = results["source_params_vs_width"][-1]
        else:
            results["target_acc"] = results["acc"]
            results["target_params"] = float(source_params(widest[0]))
        first = next(iter(grid.members.values()))
        if self.ssa_targets > 0:
            results.update(
                subset_sum_report(first, self.ssa_targets, self.ssa_base_size, self.eps, self.seed)
            )
        for kind in self.tickets:
            results.update(
                ticket_report(
                    first,
                    kind,
                    x,
                    y,
                    rho=self.rho,
                    eps=self.eps,
                    max_size=self.max_subset_size,
                    repeats=self.ticket_repeats,
                    seed=self.seed,
                )
            )
        self.net.train(was_training)
        return results
