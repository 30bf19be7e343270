"""A wide net trained on labels plus knowledge, and its infinite-width reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, choose, positive_int
from dlt_runner.core.module import OptimizerFactory, RunnerModule
from dlt_runner.papers.informed_wide.claim import interior_gain
from dlt_runner.papers.informed_wide.knowledge import (
    KNOWLEDGE_TERMS,
    blend_labels,
    blended_targets,
    get_knowledge_term,
    informed_loss,
    masked_mean,
)
from dlt_runner.papers.informed_wide.nets import (
    CentredNet,
    check_infinite_width_ntk,
    gradient_descent_predictions,
    infinite_width_ntk,
)
from dlt_runner.theory.entk import empirical_ntk

REFERENCE_KERNELS = ("analytic", "empirical", "none")
DEFAULT_REFERENCE_LAMBDAS = tuple(i / 10 for i in range(11))


class InformedWideModule(RunnerModule):
    """Minimise (1 - lambda) label MSE + lambda knowledge loss with ``net``.

    Per step it logs ``train/loss_label`` and ``train/loss_knowledge``; val/test log ``risk``
    (MSE to the noise-free truth), ``mse`` (to the noisy labels, what a practitioner can
    measure; Optuna's target) and, for knowledge labels, ``knowledge_gap`` (MSE to g).

    ``analysis``: ``test_risk`` of the trained net; the knowledge imperfectness
    ``knowledge_error`` = E(g - f*)^2 and the ``label_noise_variance``, both measured on the
    data; and the infinite-width reference — the same objective solved in closed form by
    NTK gradient descent (``nets.gradient_descent_predictions``) at ``reference_learning_rate``
    for ``reference_steps`` steps — as ``ntk_test_risk`` at this lambda, the whole curve
    ``ntk_risk_vs_lambda`` over ``reference_lambdas`` (curve ``ntk_lambdas`` holds the
    lambdas), its argmin ``ntk_best_lambda`` and ``ntk_gain`` = min over interior lambdas /
    min(risk(0), risk(1)).

    Args:
        net: the wide network, normally a ``CentredNet`` around an NTK-parameterised ``MLP``.
        knowledge_weight: lambda in [0, 1] (0 = label-only, 1 = knowledge-only).
        label_blend: beta in [0, 1] of the generalised objective y~ = (1 - beta) y + beta g
            (ASSUMPTION: the paper's exact form could not be read; see ``knowledge.py``).
        knowledge: how knowledge enters the loss, one of ``knowledge.KNOWLEDGE_TERMS``.
        reference_kernel: 'analytic' (infinite-width NTK of the net's architecture),
            'empirical' (NTK of the net at initialisation) or 'none'. The reference needs
            function-valued knowledge and mirrors full-batch plain gradient descent.
        reference_lambdas: the lambdas of the reference curve.
        reference_learning_rate, reference_steps: the GD the reference mirrors (bind to the
            optimiser's lr and trainer.max_steps); reference_steps null = trained to convergence.
        **kwargs: the base module's options (``scheduler``, ``log_every_n_steps``, ...;
            see ``dlt_runner.core.module.RunnerModule``).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        knowledge_weight: float = 0.5,
        label_blend: float = 0.0,
        knowledge: str = "function",
        reference_kernel: str = "analytic",
        reference_lambdas: Sequence[float] = DEFAULT_REFERENCE_LAMBDAS,
        reference_learning_rate: float = 0.5,
        reference_steps: int | None = 1500,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, optimizer, **kwargs)
        for name, value in (("knowledge_weight", knowledge_weight), ("label_blend", label_blend)):
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1], got {value}")
        self.knowledge_weight = float(knowledge_weight)
        self.label_blend = float(label_blend)
        self.knowledge_name = knowledge
        self.knowledge = get_knowledge_term(knowledge)
        function_valued = [name for name, term in KNOWLEDGE_TERMS.items() if term.function_valued]
        if self.label_blend and not self.knowledge.function_valued:
            raise ConfigError(
                f"model.label_blend > 0 blends labels with knowledge labels g, which knowledge "
                f"{knowledge!r} has none of; use knowledge: {', '.join(function_valued)}"
            )
        self.reference_kernel = reference_kernel
        choose("reference kernel", reference_kernel, dict.fromkeys(REFERENCE_KERNELS))
        self.reference_lambdas = [float(v) for v in reference_lambdas]
        if any(not 0.0 <= v <= 1.0 for v in self.reference_lambdas):
            raise ConfigError(
                f"model.reference_lambdas must lie in [0, 1], got {reference_lambdas}"
            )
        self.reference_learning_rate = float(reference_learning_rate)
        self.reference_steps = (
            None
            if reference_steps is None  # null: the converged (infinite-time) reference
            else positive_int("model.reference_steps", reference_steps)
        )
        if reference_kernel != "none":
            self._check_reference_net(function_valued)

    def _check_reference_net(self, function_valued: list[str]) -> None:
        if not self.knowledge.function_valued:
            raise ConfigError(
                f"the NTK reference needs knowledge labels; knowledge {self.knowledge_name!r} is "
                f"a penalty. Use knowledge: {', '.join(function_valued)}, or "
                "reference_kernel: none"
            )
        if not isinstance(self.net, CentredNet):
            raise ConfigError(
                "the NTK reference assumes f_0 = 0: wrap the net in "
                "dlt_runner.papers.informed_wide.nets.CentredNet, or set reference_kernel: none"
            )
        if self.reference_kernel == "analytic":
            try:
                check_infinite_width_ntk(self.net.base)
            except ValueError as error:
                raise ConfigError(f"{error}; or set model.reference_kernel: empirical") from None

    # ----------------------------------------------------------------- objective
    def predict(self, x: Tensor) -> Tensor:
        """f(x), shape (n,)."""
        return self.net(x).squeeze(-1)

    def loss(self, batch: Batch) -> tuple[Tensor, Mapping[str, Tensor]]:
        outputs = self.predict(batch["x"])
        labels = batch["y"]
        if self.label_blend:
            labels = blend_labels(labels, batch["knowledge"], self.label_blend)
        # A penalty's input gradients cost a second pass: skip it when its weight is 0.
        knowledge = (
            self.knowledge.squared_residual(self.net, batch, outputs)
            if self.knowledge_weight > 0 or self.knowledge.function_valued
            else torch.zeros_like(outputs)
        )
        parts = informed_loss(
            (outputs - labels) ** 2,
            batch["labelled"],
            knowledge,
            batch["informed"],
            self.knowledge_weight,
        )
        return parts.total, {
            "loss_label": parts.label.detach(),
            "loss_knowledge": parts.knowledge.detach(),
        }

    def evaluate(self, batch: Batch, split: str) -> dict[str, Tensor]:
        outputs = self.predict(batch["x"])
        metrics = {
            "risk": torch.mean((outputs - batch["truth"]) ** 2),
            "mse": masked_mean((outputs - batch["y"]) ** 2, batch["labelled"]),
        }
        if self.knowledge.function_valued:
            metrics["knowledge_gap"] = torch.mean((outputs - batch["knowledge"]) ** 2)
        return metrics

    # ----------------------------------------------------------------- analysis
    @torch.no_grad()
    def analysis(self, datamodule: Any) -> dict[str, Any]:
        train = {k: v.to(self.device) for k, v in datamodule.tensors("train").items()}
        test = {k: v.to(self.device) for k, v in datamodule.tensors("test").items()}
        labelled = train["labelled"]
        results: dict[str, Any] = {
            "test_risk": float(torch.mean((self.predict(test["x"]) - test["truth"]) ** 2)),
            "knowledge_error": float(torch.mean((test["knowledge"] - test["truth"]) ** 2)),
            "label_noise_variance": float(
                masked_mean((train["y"] - train["truth"]) ** 2, labelled)
            ),
        }
        if self.reference_kernel != "none":
            results.update(self.reference_curve(train, test))
        return results

    def reference_kernels(self, train_x: Tensor, test_x: Tensor) -> tuple[Tensor, Tensor]:
        """(Theta(train, train), Theta(test, train)) of the reference, float64."""
        if self.reference_kernel == "analytic":
            return (
                infinite_width_ntk(self.net.base, train_x),
                infinite_width_ntk(self.net.base, test_x, train_x),
            )
        initial = self.net.initial
        names = [name for name, _ in initial.named_parameters()]
        with torch.enable_grad():
            return (
                empirical_ntk(initial, train_x, parameters=names, dtype=torch.float64),
                empirical_ntk(initial, test_x, train_x, parameters=names, dtype=torch.float64),
            )

    def reference_risk(
        self, kernels: tuple[Tensor, Tensor], train: Batch, test: Batch, knowledge_weight: float
    ) -> float:
        """Test risk of the infinite-width net trained on the informed loss at this lambda."""
        labels = blend_labels(train["y"].double(), train["knowledge"].double(), self.label_blend)
        weights, targets = blended_targets(
            labels,
            train["labelled"],
            train["knowledge"].double(),
            train["informed"],
            knowledge_weight,
        )
        predictions = gradient_descent_predictions(
            *kernels, weights, targets, self.reference_learning_rate, self.reference_steps
        )
        return float(torch.mean((predictions - test["truth"].double()) ** 2))

    def reference_curve(self, train: Batch, test: Batch) -> dict[str, Any]:
        """The reference's risk at this run's lambda and over ``reference_lambdas``."""
        kernels = self.reference_kernels(train["x"], test["x"])
        results: dict[str, Any] = {
            "ntk_test_risk": self.reference_risk(kernels, train, test, self.knowledge_weight)
        }
        if not self.reference_lambdas:
            return results
        curve = [self.reference_risk(kernels, train, test, lam) for lam in self.reference_lambdas]
        results["ntk_lambdas"] = list(self.reference_lambdas)
        results["ntk_risk_vs_lambda"] = curve
        results["ntk_best_lambda"] = self.reference_lambdas[
            min(range(len(curve)), key=curve.__getitem__)
        ]
        gain = interior_gain(self.reference_lambdas, curve)
        if gain is not None:
            results["ntk_gain"] = gain
        return results
