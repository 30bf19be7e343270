"""Contrastive pretraining with the SimCLR loss, measured as in the paper's Table 1.

Per step: ``train/loss``, the NT-Xent loss of two fresh views of the minibatch (paper eq. 2,
tau = 0.5). At every validation and after the fit: the held-out contrastive loss (views from a
fixed evaluation generator, so every encoder of a seed sees identical augmentations) and the
accuracy of a linear probe on clean inputs (paper §2, Table 1's two columns). The validation
values become the curves ``heldout_loss_vs_step`` and ``probe_acc_vs_step``.

A representation with no trainable parameters (the constructed minimisers f and g of Table 1)
is not trained: the fit stops before its first step and only the measurements run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, positive_int
from dlt_runner.core.module import RunnerModule
from dlt_runner.data.transforms import TwoViews
from dlt_runner.papers.contrastive_bias.analysis import (
    Views,
    heldout_contrastive_loss,
    linear_probe_accuracy,
    representations,
)
from dlt_runner.papers.contrastive_bias.losses import nt_xent, nt_xent_orthogonal

#: Seed offset of the test split's views (the held-out split uses ``eval_seed`` itself).
_TEST_STREAM = 1


class ContrastiveModule(RunnerModule):
    """Minimise the NT-Xent loss of ``net`` over two augmented views per input.

    Analysis: ``heldout_loss``, ``probe_acc``, ``loss_floor`` (the loss of aligned views of
    mutually orthogonal inputs at this batch size, log(e^{1/tau} + 2B - 2) - 1/tau), and the
    curves ``steps``, ``heldout_loss_vs_step``, ``probe_acc_vs_step``.

    Args:
        net: the representation (an ``nn.Module``, trained or constructed).
        optimizer: partial optimiser; ``None`` for a representation with nothing to train.
        augmentation: two-view transform ``views(x, generator) -> (x1, x2)``
            (:class:`~dlt_runner.data.transforms.TwoViews`), or a one-view transform that is
            then wrapped in ``TwoViews``.
        temperature: tau of the NT-Xent loss.
        loss_batch_size: inputs per held-out loss batch; bind to the training batch size.
        eval_seed: seeds the held-out views (bind to the run seed: one draw per seed, shared by
            every encoder).
        probe_fit_split, probe_fit_size: split (and its first points; ``null`` = all) the
            probe is fitted on; probe_score_split, probe_score_size: the split it is scored on.
        probe_max_iter: iterations of the probe's logistic regression.
    """

    def __init__(
        self,
        net: nn.Module,
        augmentation: Any,
        optimizer: Any = None,
        temperature: float = 0.5,
        loss_batch_size: int = 512,
        eval_seed: int = 0,
        probe_fit_split: str = "probe",
        probe_fit_size: int | None = None,
        probe_score_split: str = "test",
        probe_score_size: int | None = None,
        probe_max_iter: int = 3000,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, optimizer, **kwargs)
        self.views: Views = (
            augmentation if isinstance(augmentation, TwoViews) else TwoViews(augmentation)
        )
        if float(temperature) <= 0:
            raise ConfigError(f"model.temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.loss_batch_size = positive_int("model.loss_batch_size", loss_batch_size)
        self.eval_seed = int(eval_seed)
        self.probe_fit_split, self.probe_score_split = probe_fit_split, probe_score_split
        self.probe_fit_size = probe_fit_size
        self.probe_score_size = probe_score_size
        self.probe_max_iter = positive_int("model.probe_max_iter", probe_max_iter)
        self.trainable = bool(self.trainable_parameters())
        if self.trainable and optimizer is None:
            raise ConfigError("model.optimizer is required: the representation has parameters")
        self.history: dict[str, list[float]] = {"steps": [], "heldout_loss": [], "probe_acc": []}

    # ----------------------------------------------------------------- training
    def configure_optimizers(self) -> Any:
        return super().configure_optimizers() if self.trainable else None

    def on_train_start(self) -> None:
        super().on_train_start()
        if not self.trainable:
            self.trainer.should_stop = True  # a constructed minimiser: nothing to train

    def training_step(self, chunk: list[Batch], chunk_idx: int) -> None:
        if self.trainable:
            super().training_step(chunk, chunk_idx)

    def loss(self, batch: Batch) -> Tensor:
        first, second = self.views(batch["x"], self.step_generator())
        return nt_xent(self.net(first), self.net(second), self.temperature)

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, batch: Batch, split: str) -> dict[str, Tensor]:
        # The held-out loss is measured whole at the end of the validation epoch
        # (on_validation_epoch_end); test batches get views from a fixed generator.
        if split == "val":
            return {}
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.eval_seed * 1_000 + _TEST_STREAM)
        first, second = self.views(batch["x"], generator)
        return {"contrastive_loss": nt_xent(self.net(first), self.net(second), self.temperature)}

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        measured = self.measure(self.trainer.datamodule)
        self.log("val/loss", measured["heldout_loss"])
        self.log("val/probe_acc", measured["probe_acc"])
        self.history["steps"].append(float(self.global_step))
        for name in ("heldout_loss", "probe_acc"):
            self.history[name].append(measured[name])

    def measure(self, datamodule: Any) -> dict[str, float]:
        """Held-out contrastive loss and linear-probe accuracy of the current representation."""
        was_training = self.net.training
        self.net.eval()
        try:
            heldout = datamodule.tensors("val")["x"].to(self.device)
            loss = heldout_contrastive_loss(
                self.net,
                heldout,
                self.views,
                self.loss_batch_size,
                self.eval_seed,
                self.temperature,
            )
            fit = self._probe_set(datamodule, self.probe_fit_split, self.probe_fit_size)
            score = self._probe_set(datamodule, self.probe_score_split, self.probe_score_size)
            accuracy = linear_probe_accuracy(*fit, *score, max_iter=self.probe_max_iter)
        finally:
            self.net.train(was_training)
        return {"heldout_loss": loss, "probe_acc": accuracy}

    def _probe_set(self, datamodule: Any, split: str, size: int | None) -> tuple[Any, Any]:
        tensors = datamodule.tensors(split)
        x, y = tensors["x"][:size], tensors["y"][:size]
        return representations(self.net, x.to(self.device)), y.cpu().numpy()

    def analysis(self, datamodule: Any) -> dict[str, Any]:
        results: dict[str, Any] = dict(self.measure(datamodule))
        results["loss_floor"] = nt_xent_orthogonal(self.loss_batch_size, self.temperature)
        if self.history["steps"]:  # a constructed minimiser is never validated: no curves
            results["steps"] = list(self.history["steps"])
            results["heldout_loss_vs_step"] = list(self.history["heldout_loss"])
            results["probe_acc_vs_step"] = list(self.history["probe_acc"])
        return results

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["contrastive_history"] = {k: list(v) for k, v in self.history.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        history = checkpoint.get("contrastive_history")
        if history is not None:
            self.history = {k: list(v) for k, v in history.items()}
