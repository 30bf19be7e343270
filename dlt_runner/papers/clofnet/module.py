"""N-body position prediction with ClofNet, EGNN or the constant-velocity baseline (paper §7.1).

The network maps (x, v, charges) at the input step to the positions 1,000 steps later; the
loss is their mean squared error (the official ``nn.MSELoss`` over particles and coordinates).
At the end of a run the module measures what the paper's claim rests on: the equivariance
error under a random proper rotation + translation (SE(3)), the error under a reflection
(E(3) \\ SE(3): ~0 for EGNN, not for ClofNet), the parameter count and the forward time.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch
from torch import Tensor, nn

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import positive_int
from dlt_runner.core.module import OptimizerFactory, RunnerModule
from dlt_runner.papers.clofnet.equivariance import equivariance_error, random_rotation, reflection


class NBodyModule(RunnerModule):
    """Train ``net(x, v, charges) -> positions`` on the N-body data (``NBodyData``).

    Metrics: ``train/loss``, ``val/mse``, ``test/mse``; analysis (on the test split, after
    fit and test): ``equivariance_error`` (max over ``n_transforms`` random proper rotations
    with translations), ``reflection_error`` (same with Householder reflections),
    ``parameters``, ``forward_ms`` (one forward pass on ``timing_batch`` systems, median), and
    ``best_val_mse`` / ``selected_epoch`` when selecting on validation.

    Args:
        net: ClofNet, EGNN or ConstantVelocity (``forward(x, v, charges)``).
        select_on_val: keep the weights of the best validation MSE seen and restore them when
            training ends, so test and analysis use them (the official protocol: the model of
            the best validation loss is the one reported).
        n_transforms: random transforms per equivariance measurement (the max is reported).
        analysis_systems: test systems the equivariance errors are measured on.
        timing_batch: systems per forward pass in ``forward_ms``.
        **kwargs: the base module's options (``scheduler``, ``log_every_n_steps``, ...;
            see ``dlt_runner.core.module.RunnerModule``).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        select_on_val: bool = True,
        n_transforms: int = 3,
        analysis_systems: int = 500,
        timing_batch: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, optimizer, **kwargs)
        self.select_on_val = bool(select_on_val)
        self.n_transforms = positive_int("model.n_transforms", n_transforms)
        self.analysis_systems = positive_int("model.analysis_systems", analysis_systems)
        self.timing_batch = positive_int("model.timing_batch", timing_batch)
        self.best_val_mse = math.inf
        self.best_epoch = -1
        self.best_state: dict[str, Tensor] | None = None

    # ----------------------------------------------------------------- objective
    def predict(self, batch: Batch) -> Tensor:
        """Predicted positions ``(B, N, 3)`` at the target step."""
        return self.net(batch["x"], batch["v"], batch["charges"])

    def loss(self, batch: Batch) -> Tensor:
        return torch.mean((self.predict(batch) - batch["target"]) ** 2)

    def evaluate(self, batch: Batch, split: str) -> dict[str, Tensor]:
        return {"mse": self.loss(batch)}

    # ----------------------------------------------------------------- model selection
    def on_validation_end(self) -> None:
        # Called after the epoch's metrics are reduced (and synced across ranks), as
        # ModelCheckpoint reads them.
        value = self.trainer.callback_metrics.get("val/mse")
        if not self.select_on_val or self.trainer.sanity_checking or value is None:
            return
        if float(value) < self.best_val_mse:
            self.best_val_mse = float(value)
            self.best_epoch = self.current_epoch
            self.best_state = copy.deepcopy(self.net.state_dict())

    def on_train_end(self) -> None:
        if self.select_on_val and self.best_state is not None:
            self.net.load_state_dict(self.best_state)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["best_on_val"] = {
            "mse": self.best_val_mse,
            "epoch": self.best_epoch,
            "state": self.best_state,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        best = checkpoint.get("best_on_val")
        if best is not None:
            self.best_val_mse, self.best_epoch = best["mse"], best["epoch"]
            self.best_state = best["state"]

    # ----------------------------------------------------------------- analysis
    @torch.no_grad()
    def symmetry_errors(self, batch: Batch, seed: int = 0) -> dict[str, float]:
        """Max relative errors under random rotations (SE(3)) and reflections (E(3) \\ SE(3)),
        each with a random N(0, I) translation, over ``n_transforms`` draws."""
        generator = torch.Generator().manual_seed(seed)
        x, v, charges = batch["x"], batch["v"], batch["charges"]
        rotation_errors, reflection_errors = [], []
        for _ in range(self.n_transforms):
            rotation = random_rotation(generator)
            mirror = reflection(generator)
            shift = torch.randn(3, generator=generator, dtype=torch.float64)
            rotation_errors.append(
                equivariance_error(self.net, x, v, (charges,), rotation=rotation, translation=shift)
            )
            reflection_errors.append(
                equivariance_error(self.net, x, v, (charges,), rotation=mirror, translation=shift)
            )
        return {
            "equivariance_error": max(rotation_errors),
            "reflection_error": max(reflection_errors),
        }

    @torch.no_grad()
    def forward_milliseconds(self, batch: Batch, repeats: int = 10) -> float:
        """Median wall time of one forward pass on ``batch`` (after two warm-up passes)."""
        times = []
        for index in range(repeats + 2):
            self._synchronize()
            started = time.perf_counter()
            self.predict(batch)
            self._synchronize()
            if index >= 2:
                times.append(time.perf_counter() - started)
        return 1e3 * sorted(times)[len(times) // 2]

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def analysis(self, datamodule: Any) -> dict[str, float]:
        test = datamodule.tensors("test")
        test = {name: tensor.to(self.device) for name, tensor in test.items()}
        results: dict[str, float] = self.symmetry_errors(
            {name: tensor[: self.analysis_systems] for name, tensor in test.items()}
        )
        results["parameters"] = float(sum(p.numel() for p in self.net.parameters()))
        results["forward_ms"] = self.forward_milliseconds(
            {name: tensor[: self.timing_batch] for name, tensor in test.items()}
        )
        if self.select_on_val and self.best_state is not None:
            results["best_val_mse"] = self.best_val_mse
            results["selected_epoch"] = float(self.best_epoch)
        return results
