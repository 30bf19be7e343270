"""Adversarial training of a ConvResNet and its robustness / smoothness measurements.

Training (the paper's numerical section; Madry et al. 2018, eq. 2.1): every minibatch is
replaced by adversarial examples of the current network and the loss is the cross-entropy on
those alone, ``min_theta E max_{|delta|_inf <= eps} CE(f(x + delta), y)``. The inner
maximisation is FGSM with a random start (Wong et al. 2020) at CPU scale, PGD at paper scale.

Evaluation: clean accuracy, accuracy under PGD with ``eval_steps`` steps of ``eval_alpha``
from a random start, and the mean input-gradient norm (``analysis.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler, MultiStepLR

from dlt_runner.attacks import pgd
from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, choose
from dlt_runner.core.module import RunnerModule
from dlt_runner.papers.convresnet_smooth.analysis import (
    accuracy,
    correct,
    input_gradient_norms,
    parameter_count,
    robust_accuracy,
    robust_accuracy_curve,
)

#: ``train_attack`` name -> whether training uses adversarial examples ("none": clean training,
#: the non-robust reference).
TRAIN_ATTACKS = {"fgsm": True, "pgd": True, "none": False}


class AdversarialTraining(RunnerModule):
    """Adversarial training on every batch; robust evaluation (needs gradients in val/test).

    Args:
        net: the classifier (``dlt_runner.nn.resnet.ConvResNet`` or a baseline).
        eps: L-infinity radius on the [0, 1] pixel scale, for training and evaluation.
        train_attack: ``fgsm`` (one step of ``train_alpha`` from a random start), ``pgd``
            (``train_steps`` steps of ``train_alpha``, random start) or ``none``.
        train_steps: PGD steps in training (``pgd`` only).
        train_alpha: training step size; ``null``: 1.25 eps for fgsm, eps / 4 for pgd.
        eval_steps, eval_alpha: the evaluation PGD (``null`` alpha: eps / 4); the metric is
            named ``robust_acc_pgd<eval_steps>``.
        clamp: valid pixel range ``[low, high]`` the examples stay in (``null``: none).
        augmentation: optional on-device transform ``t(x, generator)`` applied before the
            attack (e.g. random crop + flip at CIFAR scale).
        curve_eps: radii of the robust-accuracy-vs-eps curve computed by ``analysis``
            (empty: no curve).
        analysis_batch_size: batch size of ``analysis`` (``null``: the whole test split).
        train_attack_eval_mode: craft training examples with the net in eval mode (BatchNorm
            on running statistics); ``False`` keeps train mode, as PGD training code for
            BatchNorm nets usually does (e.g. locuslab/robust_overfitting). No effect without
            normalisation layers.
        **kwargs: RunnerModule's (optimizer, scheduler, log_every_n_steps, ...).
    """

    eval_needs_grad = True

    def __init__(
        self,
        net: nn.Module,
        eps: float = 0.1,
        train_attack: str = "fgsm",
        train_steps: int = 1,
        train_alpha: float | None = None,
        eval_steps: int = 10,
        eval_alpha: float | None = None,
        clamp: Sequence[float] | None = (0.0, 1.0),
        augmentation: Callable[[Tensor, torch.Generator], Tensor] | None = None,
        curve_eps: Sequence[float] = (),
        analysis_batch_size: int | None = None,
        train_attack_eval_mode: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(net=net, **kwargs)
        if float(eps) < 0:
            raise ConfigError(f"model.eps must be >= 0, got {eps}")
        self.adversarial = choose("train attack", train_attack, TRAIN_ATTACKS)
        self.train_attack = train_attack
        if int(train_steps) < 1 or int(eval_steps) < 1:
            raise ConfigError(
                f"model.train_steps and model.eval_steps must be >= 1, got {train_steps}, "
                f"{eval_steps}"
            )
        self.eps = float(eps)
        self.train_steps = int(train_steps)
        default_alpha = 1.25 * self.eps if train_attack == "fgsm" else self.eps / 4
        self.train_alpha = default_alpha if train_alpha is None else float(train_alpha)
        self.eval_steps = int(eval_steps)
        self.eval_alpha = self.eps / 4 if eval_alpha is None else float(eval_alpha)
        if clamp is not None and len(clamp) != 2:
            raise ConfigError(f"model.clamp must be [low, high] or null, got {clamp}")
        self.clamp = None if clamp is None else (float(clamp[0]), float(clamp[1]))
        self.augmentation = augmentation
        self.curve_eps = [float(e) for e in curve_eps]
        self.analysis_batch_size = analysis_batch_size
        self.train_attack_eval_mode = bool(train_attack_eval_mode)
        self.robust_name = f"robust_acc_pgd{self.eval_steps}"

    # ----------------------------------------------------------------- training
    def adversarial_examples(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        """The training inputs: the attack's examples for the current network (or x).

        FGSM with a random start is one PGD step of ``train_alpha`` (``attacks.fgsm``).
        """
        if not self.adversarial:
            return x
        steps = 1 if self.train_attack == "fgsm" else self.train_steps
        return pgd(
            self.net,
            x,
            y,
            eps=self.eps,
            steps=steps,
            alpha=self.train_alpha,
            clamp=self.clamp,
            generator=generator,
            eval_mode=self.train_attack_eval_mode,
        )

    def evaluation_examples(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        """PGD-``eval_steps`` examples from a random start (the robust-accuracy attack)."""
        return pgd(
            self.net,
            x,
            y,
            eps=self.eps,
            steps=self.eval_steps,
            alpha=self.eval_alpha,
            clamp=self.clamp,
            generator=generator,
        )

    def loss(self, batch: Batch) -> tuple[Tensor, Mapping[str, Tensor]]:
        x, y = batch["x"], batch["y"]
        if self.augmentation is not None:
            x = self.augmentation(x, self.step_generator(stream=1))
        x_train = self.adversarial_examples(x, y, self.step_generator(stream=2))
        logits = self.net(x_train)
        return F.cross_entropy(logits, y), {"adv_acc": correct(logits, y).mean()}

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, batch: Batch, split: str) -> Mapping[str, Tensor]:
        x, y = batch["x"], batch["y"]
        x_adv = self.evaluation_examples(x, y, self.step_generator(stream=3))
        gradient_norms = input_gradient_norms(self.net, x, y)
        with torch.no_grad():
            logits = self.net(x)
            robust = correct(self.net(x_adv), y).mean()
        return {
            "loss": F.cross_entropy(logits, y),
            "acc": correct(logits, y).mean(),
            self.robust_name: robust,
            "input_grad_l2": gradient_norms.mean(),
        }

    def analysis(self, datamodule: pl.LightningDataModule) -> dict[str, Any]:
        """On the test split: ``clean_acc``, ``robust_acc_pgd<k>``, ``mean_input_grad_l2``,
        ``n_params``, and the curve ``robust_acc_vs_eps`` over ``curve_eps``."""
        test = datamodule.tensors("test")
        x, y = test["x"].to(self.device), test["y"].to(self.device)
        size = self.analysis_batch_size
        was_training = self.net.training
        self.net.eval()
        generator = self.step_generator(stream=4)
        results: dict[str, Any] = {
            "clean_acc": accuracy(self.net, x, y, size),
            self.robust_name: robust_accuracy(
                self.net,
                x,
                y,
                self.eps,
                self.eval_steps,
                self.eval_alpha,
                size,
                self.clamp,
                generator,
            ),
            "mean_input_grad_l2": float(input_gradient_norms(self.net, x, y, size).mean()),
            "n_params": parameter_count(self.net),
        }
        if self.curve_eps:
            results["robust_acc_vs_eps"] = robust_accuracy_curve(
                self.net,
                x,
                y,
                self.curve_eps,
                steps=self.eval_steps,
                alpha_fraction=self.eval_alpha / self.eps if self.eps > 0 else 0.25,
                batch_size=size,
                clamp=self.clamp,
                generator=generator,
            )
            results["curve_eps"] = list(self.curve_eps)
        self.net.train(was_training)
        return results


def piecewise_decay(
    optimizer: torch.optim.Optimizer,
    steps: int,
    milestones: Sequence[float] = (0.5, 0.75),
    gamma: float = 0.1,
) -> LRScheduler:
    """Multiply the rate by ``gamma`` at each milestone, given as a fraction of ``steps``.

    The piecewise-constant schedule of PGD adversarial training on CIFAR-10 (Madry et al.
    2018; Rice et al. 2020, "Overfitting in adversarially robust deep learning": x0.1 at 50%
    and 75% of training); bind ``steps`` to ``${trainer.max_steps}``.
    """
    if steps is None or int(steps) < 1:
        raise ConfigError(f"piecewise_decay needs steps >= 1 (trainer.max_steps), got {steps}")
    if any(not 0 < m < 1 for m in milestones):
        raise ConfigError(f"piecewise_decay milestones are fractions in (0, 1), got {milestones}")
    points = sorted({max(1, round(m * int(steps))) for m in milestones})
    return MultiStepLR(optimizer, milestones=points, gamma=gamma)
