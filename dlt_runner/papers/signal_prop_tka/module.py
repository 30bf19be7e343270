"""Deep MLP classifier whose per-layer tangent-kernel alignment is tracked through training."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, choose
from dlt_runner.core.module import OptimizerFactory, RunnerModule
from dlt_runner.nn.mlp import MLP
from dlt_runner.papers.signal_prop_tka.alignment import (
    KERNELS,
    alignment_peak,
    centered_labels,
    chi1,
    fixed_point_variance,
    forward_variances,
    layer_alignments,
    mean_field_variances,
    weight_gradient_norms,
)
from dlt_runner.theory.metrics import accuracy


def _cross_entropy(logits: Tensor, batch: Batch) -> Tensor:
    return F.cross_entropy(logits, batch["y"])


def _mse(logits: Tensor, batch: Batch) -> Tensor:
    return F.mse_loss(logits, batch["y_onehot"].to(logits.dtype))


# 10-class cross-entropy shows the ascent-descent; MSE is kept for comparison (with a
# binary task it gave a monotone rise).
LOSSES: dict[str, Callable[[Tensor, Batch], Tensor]] = {
    "cross_entropy": _cross_entropy,
    "mse": _mse,
}

Profile = dict[str, list[float]]


class SignalPropModule(RunnerModule):
    """Train `net` on a classification task; measure per-layer alignment and signal propagation.

    A profile is, for layers l = 1..L+1 (readout last): the alignment A_l of the layer's weight
    tangent kernel with the centred one-hot labels and the forward variance q_l, both on the
    first `probe_points` points of `probe_split`, and ||dL/dW_l|| on as many training points.
    It is taken at initialisation (before the first step), every `profile_every_n_epochs`
    epochs (logged as `align/layer_XX`, `q/layer_XX`, `grad_norm/layer_XX`: one W&B line per
    layer) and at the end (`analysis`: the curves `align_init`/`align_final` against layer
    index, the peak layer and A_peak - A_first, A_peak - A_last, plus the
    mean-field q_l and chi_1 of the initialisation).

    Args:
        net: an `MLP` (e.g. `nets.DeepMLP`).
        loss: one of `LOSSES`.
        probe_split: split the alignment is measured on: `val` (held out, CPU scale) or `train`
           .
        probe_points: how many of its points (the kernels are probe_points^2).
        profile_every_n_epochs: epochs between logged profiles; 0 logs only init and end.
        kernel: `factored` (exact MLP factorisation, fast) or `jacobian` (per-sample Jacobians).
        include_bias: add the biases' tangent features to K_l (the paper: weights only).
        **kwargs: the base module's options (``scheduler``, ``log_every_n_steps``, ...;
            see ``dlt_runner.core.module.RunnerModule``).
    """

    def __init__(
        self,
        net: MLP,
        optimizer: OptimizerFactory,
        loss: str = "cross_entropy",
        probe_split: str = "val",
        probe_points: int = 200,
        profile_every_n_epochs: int = 4,
        kernel: str = "factored",
        include_bias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, optimizer, **kwargs)
        if not isinstance(net, MLP) or len(net.layers) < 2:
            raise ConfigError(
                f"model.net must be a dlt_runner.nn.MLP with at least one hidden layer; got {net!r}"
            )
        self.loss_function = choose("loss", loss, LOSSES)
        self.kernel_function = choose("kernel", kernel, KERNELS)
        if int(probe_points) < 2:
            raise ConfigError(f"model.probe_points must be >= 2, got {probe_points}")
        if int(profile_every_n_epochs) < 0:
            raise ConfigError(
                f"model.profile_every_n_epochs must be >= 0 (0: init and end only), "
                f"got {profile_every_n_epochs}"
            )
        self.probe_split = probe_split
        self.probe_points = int(probe_points)
        self.profile_every_n_epochs = int(profile_every_n_epochs)
        self.include_bias = bool(include_bias)
        self.init_profile: Profile | None = None
        self._log_init_profile = False

    # ------------------------------------------------------------------ training
    def loss(self, batch: Batch) -> Tensor:
        return self.loss_function(self.net(batch["x"]), batch)

    def evaluate(self, batch: Batch, split: str) -> dict[str, Tensor]:
        logits = self.net(batch["x"])
        return {"loss": self.loss_function(logits, batch), "acc": accuracy(logits, batch["y"])}

    # ------------------------------------------------------------------ measurements
    def profile(self, probe: Batch, train: Batch) -> Profile:
        """Alignment and q_l per layer on `probe`; weight-gradient norms of the loss on `train`."""
        kernels = self.kernel_function(self.net, probe["x"], include_bias=self.include_bias)
        with torch.enable_grad():
            train_loss = self.loss_function(self.net(train["x"]), train)
        return {
            "align": layer_alignments(kernels, centered_labels(probe["y_onehot"])),
            "q": forward_variances(self.net, probe["x"]),
            "grad_norm": weight_gradient_norms(self.net, train_loss),
        }

    def _probe_batches(self, datamodule: Any) -> tuple[Batch, Batch]:
        """First `probe_points` points of the probe split and of the training split."""
        try:
            probe, train = datamodule.tensors(self.probe_split), datamodule.tensors("train")
        except ConfigError:
            raise ConfigError(
                f"model.probe_split={self.probe_split!r} is not a data split; choose one of: "
                f"{', '.join(datamodule.splits)}"
            ) from None
        first = lambda split: {name: t[: self.probe_points] for name, t in split.items()}
        return first(probe), first(train)

    def _log_profile(self, profile: Profile) -> None:
        metrics = {
            f"{name}/layer_{layer:02d}": value
            for name, values in profile.items()
            for layer, value in enumerate(values, 1)
        }
        metrics["align/peak_layer"] = float(alignment_peak(profile["align"]).layer)
        self.log_dict(metrics, on_step=False, on_epoch=True)

    def on_fit_start(self) -> None:
        # Measured before the training loop starts (and its timer): it is the paper's
        # measurement, not training. A resumed run keeps the profile of its initialisation.
        self._log_init_profile = self.init_profile is None
        if self._log_init_profile:
            self.init_profile = self.profile(*self._probe_batches(self.trainer.datamodule))

    def on_train_start(self) -> None:
        super().on_train_start()
        if self._log_init_profile:  # self.log is not allowed in on_fit_start
            self._log_profile(self.init_profile)

    def on_train_epoch_end(self) -> None:
        every = self.profile_every_n_epochs
        if every and (self.current_epoch + 1) % every == 0:
            self._log_profile(self.profile(*self._probe_batches(self.trainer.datamodule)))

    def analysis(self, datamodule: Any) -> dict[str, Any]:
        probe, train = self._probe_batches(datamodule)
        final = self.profile(probe, train)
        peak = alignment_peak(final["align"])
        # The phase (ordered / chaotic) is set by the hidden-to-hidden layers' sigma_w, sigma_b.
        hidden_weight_std, hidden_bias_std = self.net.weight_stds[1], self.net.bias_stds[1]
        fixed_point = fixed_point_variance(hidden_weight_std, hidden_bias_std, self.net.activation)
        results: dict[str, Any] = {
            "align_final": final["align"],
            "q_final": final["q"],
            "grad_norm_final": final["grad_norm"],
            "peak_layer": peak.layer,
            "peak_is_hidden": float(peak.is_hidden),
            "peak_minus_first": peak.minus_first,
            "peak_minus_last": peak.minus_last,
            "n_layers": peak.n_layers,
            "q_mean_field": mean_field_variances(
                probe["x"], self.net.weight_stds, self.net.bias_stds, self.net.activation
            ),
            "q_fixed_point": fixed_point,
            "chi1": chi1(fixed_point, hidden_weight_std, self.net.activation),
        }
        if self.init_profile is not None:
            init_peak = alignment_peak(self.init_profile["align"])
            results.update(
                {
                    "align_init": self.init_profile["align"],
                    "q_init": self.init_profile["q"],
                    "grad_norm_init": self.init_profile["grad_norm"],
                    "peak_layer_init": init_peak.layer,
                    "peak_minus_first_init": init_peak.minus_first,
                    "peak_minus_last_init": init_peak.minus_last,
                }
            )
        return results

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["signal_prop_tka_init_profile"] = self.init_profile

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.init_profile = checkpoint.get("signal_prop_tka_init_profile")
