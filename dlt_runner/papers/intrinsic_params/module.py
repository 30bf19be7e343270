"""Train only the intrinsic block of an IntrinsicNet; phi_in random or pre-trained, then frozen."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, choose, positive_int
from dlt_runner.core.module import OptimizerFactory, RunnerModule
from dlt_runner.papers.intrinsic_params.analysis import classifier_accuracy, parameter_counts
from dlt_runner.papers.intrinsic_params.nets import IntrinsicNet

PHI_IN_INITS = {"random": False, "pretrained": True}


class IntrinsicModule(RunnerModule):
    """Cross-entropy on the target task through ``net``'s trainable submodules.

    Before the first optimiser step (``on_fit_start``), with ``phi_in: pretrained``, phi_in and
    a throw-away head Linear(n_features -> n_pretrain_classes) are trained on the related task
    (split ``pretrain_split``) for ``pretrain_epochs`` epochs of Adam, then phi_in is frozen
    again (unless ``trainable`` names it) and the head is discarded from the objective. The
    flag ``phi_in_ready`` (a buffer, saved in checkpoints) makes a resumed run skip it.

    Logged in training: ``train/loss`` and the minibatch accuracy ``train/acc``; per evaluation:
    ``loss``, ``acc``. ``analysis``: ``test_acc_target_task``,
    ``train_acc``, ``n_trainable``, ``n_total``, ``trainable_fraction``, ``k``,
    ``pretrained`` (1/0); with pre-training ``pretrain_test_acc`` (the head's accuracy on the
    related task's test split) and the curves ``pretrain_loss`` / ``pretrain_acc`` per epoch.

    Args:
        net: an ``IntrinsicNet`` (its ``trainable`` list picks the submodules that learn).
        phi_in: ``random`` (frozen at init) or ``pretrained``.
        pretrain_epochs, pretrain_lr, pretrain_batch_size: the pre-training loop (Adam).
        n_pretrain_classes: outputs of the throw-away head.
        pretrain_split, pretrain_test_split: datamodule splits of the related task.
        seed: seeds the pre-training order (``${seed}``).
    """

    def __init__(
        self,
        net: IntrinsicNet,
        optimizer: OptimizerFactory,
        phi_in: str = "pretrained",
        pretrain_epochs: int = 40,
        pretrain_lr: float = 3e-3,
        pretrain_batch_size: int = 64,
        n_pretrain_classes: int = 5,
        pretrain_split: str = "pretrain",
        pretrain_test_split: str = "pretrain_test",
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, optimizer, **kwargs)
        if not isinstance(net, IntrinsicNet):
            raise ConfigError(f"model.net must be an IntrinsicNet, got {type(net).__name__}")
        self.pretrain = choose("phi_in", phi_in, PHI_IN_INITS)
        self.pretrain_epochs = int(pretrain_epochs)
        if self.pretrain and self.pretrain_epochs < 1:
            raise ConfigError(f"model.pretrain_epochs must be >= 1, got {pretrain_epochs}")
        self.pretrain_lr = float(pretrain_lr)
        self.pretrain_batch_size = positive_int("pretrain_batch_size", pretrain_batch_size)
        self.pretrain_split, self.pretrain_test_split = (
            str(pretrain_split),
            str(pretrain_test_split),
        )
        self.seed = int(seed)
        self.pretrain_head = nn.Linear(net.n_features, positive_int("classes", n_pretrain_classes))
        self.pretrain_head.requires_grad_(False)
        self.register_buffer("phi_in_ready", torch.tensor(not self.pretrain))
        self.pretrain_curves: dict[str, list[float]] = {}

    # ----------------------------------------------------------------- phi_in pre-training
    def on_fit_start(self) -> None:
        if not bool(self.phi_in_ready):
            # A smoke run (Lightning's fast_dev_run) checks the wiring with one epoch.
            epochs = 1 if self.trainer.fast_dev_run else self.pretrain_epochs
            self.pretrain_phi_in(self.trainer.datamodule, epochs)

    def pretrain_phi_in(self, datamodule: Any, epochs: int) -> None:
        """Adam on cross-entropy of head(phi_in(x)) over the related task, then re-freeze."""
        data = datamodule.tensors(self.pretrain_split)
        x, y = data["x"].to(self.device), data["y"].to(self.device)
        if int(y.max()) >= self.pretrain_head.out_features:
            raise ConfigError(
                f"the {self.pretrain_split!r} split has {int(y.max()) + 1} classes; "
                f"model.n_pretrain_classes is {self.pretrain_head.out_features}"
            )
        phi_in, head = self.net.phi_in, self.pretrain_head
        phi_in.requires_grad_(True)
        head.requires_grad_(True)
        parameters = [*phi_in.parameters(), *head.parameters()]
        optimizer = torch.optim.Adam(parameters, lr=self.pretrain_lr)
        generator = torch.Generator().manual_seed(self.seed)
        losses, accuracies = [], []
        with torch.enable_grad():
            for _ in range(epochs):
                order = torch.randperm(len(x), generator=generator).to(x.device)
                total, correct = 0.0, 0
                for start in range(0, len(x), self.pretrain_batch_size):
                    index = order[start : start + self.pretrain_batch_size]
                    logits = head(phi_in(x[index]))
                    loss = F.cross_entropy(logits, y[index])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * len(index)
                    correct += int((logits.argmax(dim=1) == y[index]).sum())
                losses.append(total / len(x))
                accuracies.append(correct / len(x))
        head.requires_grad_(False)
        phi_in.requires_grad_("phi_in" in self.net.trainable)
        for parameter in parameters:
            parameter.grad = None
        self.pretrain_curves = {"pretrain_loss": losses, "pretrain_acc": accuracies}
        self.phi_in_ready.fill_(True)

    # ----------------------------------------------------------------- training
    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.net(batch["x"])
        accuracy = (logits.argmax(dim=1) == batch["y"]).float().mean()
        return F.cross_entropy(logits, batch["y"]), {"acc": accuracy}

    def evaluate(self, batch: Batch, split: str) -> dict[str, Tensor]:
        logits = self.net(batch["x"])
        return {
            "loss": F.cross_entropy(logits, batch["y"]),
            "acc": (logits.argmax(dim=1) == batch["y"]).float().mean(),
        }

    def analysis(self, datamodule: Any) -> dict[str, float | list[float]]:
        started = time.perf_counter()
        train, test = datamodule.tensors("train"), datamodule.tensors("test")
        results: dict[str, float | list[float]] = {
            "analysis/test_acc_target_task": self._accuracy(self.net, test),
            "analysis/train_acc": self._accuracy(self.net, train),
            "analysis/k": float(self.net.k),
            "analysis/pretrained": float(self.pretrain),
        }
        results.update({f"analysis/{k}": v for k, v in parameter_counts(self.net).items()})
        if self.pretrain:
            classifier = nn.Sequential(self.net.phi_in, self.pretrain_head)
            pretrain_test = datamodule.tensors(self.pretrain_test_split)
            results["analysis/pretrain_test_acc"] = self._accuracy(classifier, pretrain_test)
        results.update({f"analysis/{k}": v for k, v in self.pretrain_curves.items()})
        results["analysis/seconds"] = time.perf_counter() - started
        return results

    def _accuracy(self, net: nn.Module, data: Batch) -> float:
        return classifier_accuracy(net, data["x"].to(self.device), data["y"].to(self.device))
