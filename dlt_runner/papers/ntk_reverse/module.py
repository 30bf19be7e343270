"""A finite net trained on MSE, judged against the deep kernel its shallow mimic was built for.

Training follows the official `utils.net_predictions`: full-batch gradient descent on the
squared error of the centred output f(x) - f_0(x) (zero at initialisation, as in NTK
theory). The end-of-run analysis is the paper's first design use case (`analysis` docstring).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, positive_int
from dlt_runner.core.module import OptimizerFactory, RunnerModule
from dlt_runner.papers.ntk_reverse.hermite import (
    HermiteActivation,
    activation_coefficients,
    hermite_kernel,
)
from dlt_runner.papers.ntk_reverse.kernel_fit import PolynomialFit
from dlt_runner.papers.ntk_reverse.nets import DeepKernel, ShallowNet
from dlt_runner.theory.closed_form_kernels import DUALS, empirical_nngp, input_covariance
from dlt_runner.theory.entk import empirical_ntk
from dlt_runner.theory.kernel_ridge import kernel_ridge_predict
from dlt_runner.theory.metrics import accuracy, relative_error

# Analysis sizes under `debug=fast`: enough to exercise every code path in well under a second.
SMOKE_KERNEL_WIDTH, SMOKE_KERNEL_POINTS, SMOKE_TRAIN_POINTS = 256, 16, 100


def half_squared_error(predictions: Tensor, targets: Tensor) -> Tensor:
    """0.5 sum_c (f_c - y_c)^2, averaged over samples (official fig_2 `mse`)."""
    return 0.5 * ((predictions - targets) ** 2).sum(dim=-1).mean()


def check_on_sphere(x: Tensor, tolerance: float = 1e-3) -> None:
    """The kernels here are functions of rho = x.x'/d only when |x|^2 = d."""
    squared_norms = (x.double().flatten(1) ** 2).mean(dim=1)
    if not torch.allclose(squared_norms, torch.ones_like(squared_norms), atol=tolerance):
        raise ConfigError(
            "ntk_reverse needs inputs on the sphere |x|^2 = d: set data.normalization=sphere "
            f"(got |x|^2/d in [{squared_norms.min():.3g}, {squared_norms.max():.3g}])"
        )


class KernelMimicModule(RunnerModule):
    """Train `net` (the shallow mimic net, or a deep ReLU/erf baseline) on one-hot MSE.

    Args:
        net: the finite net, e.g. `nets.ShallowNet` with `hermite.mimic_activation(target, fit)`
            as its activation, or `nets.DeepNet`.
        target: the deep kernel being mimicked (`nets.DeepKernel`; its `kind` says NTK/NNGP).
        fit: the polynomial fit of `target` (`kernel_fit.PolynomialFit`).
        signs: signs of the designed Hermite coefficients (free by the main theorem; null: all +1).
        kernel_width: width of the fresh shallow net whose empirical kernel is checked.
        kernel_points: held-out (test) points of that check.
        kernel_block_bytes: memory budget of one Jacobian block of that check
            (`theory.entk.empirical_ntk`'s block_bytes); raise it on a GPU for wide inputs.
        ridge: kernel-regression ridge, (K + n ridge I)^{-1}; 0 = the official ridgeless
            infinite-time gradient-descent predictor.
        baseline_depths: depths of the ReLU and erf kernel-regression baselines (curves).
        centered: train f - f_0 (official) instead of f.
        kernel_seed: seeds the kernel-check net (bind to `${seed}`).
        **kwargs: the base module's options (``scheduler``, ``log_every_n_steps``, ...;
            see ``dlt_runner.core.module.RunnerModule``).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        target: DeepKernel,
        fit: PolynomialFit,
        signs: Sequence[float] | None = None,
        kernel_width: int = 8192,
        kernel_points: int = 100,
        kernel_block_bytes: int = 2**27,
        ridge: float = 0.0,
        baseline_depths: Sequence[int] = (1, 2, 4, 8),
        centered: bool = True,
        kernel_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, optimizer, **kwargs)
        if int(kernel_points) < 2:
            raise ConfigError(f"model.kernel_points must be >= 2, got {kernel_points}")
        if float(ridge) < 0:
            raise ConfigError(f"model.ridge must be >= 0, got {ridge}")
        self.target = target
        self.fit = fit
        self.fit_result = fit(target)
        self.designed_coefficients = activation_coefficients(
            self.fit_result.coefficients, target.kind, signs
        )
        self.kernel_width = positive_int("model.kernel_width", kernel_width)
        self.kernel_points = int(kernel_points)
        self.kernel_block_bytes = int(kernel_block_bytes)
        self.ridge = float(ridge)
        self.baseline_depths = [int(depth) for depth in baseline_depths]
        self.kernel_seed = int(kernel_seed)
        # f_0 comes from a frozen copy of the initial net: the batch may be any minibatch.
        self.initial_net = copy.deepcopy(net).requires_grad_(False) if centered else None
        self._cached_input: Tensor | None = None
        self._cached_output: Tensor | None = None

    # ----------------------------------------------------------------- training
    def predict(self, x: Tensor) -> Tensor:
        """The trained function: f(x) - f_0(x) when centred, else f(x)."""
        output = self.net(x)
        return output if self.initial_net is None else output - self._initial_output(x)

    def _initial_output(self, x: Tensor) -> Tensor:
        """f_0(x), cached for the last input tensor: full-batch training passes the same tensor
        every step, and recomputing f_0 would cost a third of the step."""
        if self._cached_input is not x:
            with torch.no_grad():
                self._cached_output = self.initial_net(x)
            self._cached_input = x
        return self._cached_output

    def loss(self, batch: Batch) -> Tensor:
        return half_squared_error(self.predict(batch["x"]), batch["y_onehot"])

    def evaluate(self, batch: Batch, split: str) -> dict[str, Tensor]:
        predictions = self.predict(batch["x"])
        return {
            "loss": half_squared_error(predictions, batch["y_onehot"]),
            "acc": accuracy(predictions, batch["y"]),
        }

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None:
            check_on_sphere(datamodule.tensors("train")["x"])

    # ----------------------------------------------------------------- analysis
    def analysis(self, datamodule: Any) -> dict[str, Any]:
        """The paper's measurements, on the trained net and on the data:

        - fit: `fit_max_error` (grid max of |target - fit|), `fit_coefficients` (b_k) and
          `activation_coefficients` (a_k) as curves;
        - kernel (paper Fig. 1): the empirical NTK/NNGP of a fresh `ShallowNet` of width
          `kernel_width` with the designed activation on `kernel_points` test points, as
          `kernel_rel_err` vs the designed kernel sum_k b_k rho^k and `kernel_rel_err_target`
          vs the deep target (fit error included);
        - kernel regression (paper Fig. 2): test accuracy/MSE of the target kernel
          (`acc_kernel_target`) and the designed kernel (`acc_kernel_designed`), and curves
          `acc_{relu,erf}_{nngp,ntk}` over `baseline_depths`;
        - the finite net: `acc_net` and `acc_gap` = |acc_net - acc_kernel_target|.
        """
        smoke = bool(getattr(datamodule, "smoke", False))
        train, test = datamodule.tensors("train"), datamodule.tensors("test")
        if smoke:
            train = {name: t[:SMOKE_TRAIN_POINTS] for name, t in train.items()}
        results: dict[str, Any] = {
            "fit_max_error": self.fit_result.max_error,
            "fit_coefficients": self.fit_result.coefficients.tolist(),
            "activation_coefficients": self.designed_coefficients.tolist(),
        }
        results.update(self._kernel_check(test["x"], smoke))
        results.update(self._kernel_regression(train, test, smoke))
        with torch.no_grad():
            predictions = self.predict(test["x"])
        results["acc_net"] = float(accuracy(predictions, test["y"]))
        results["mse_net"] = float(half_squared_error(predictions, test["y_onehot"]))
        results["acc_gap"] = abs(results["acc_net"] - results["acc_kernel_target"])
        return results

    def _kernel_check(self, x_test: Tensor, smoke: bool) -> dict[str, float]:
        width = min(self.kernel_width, SMOKE_KERNEL_WIDTH) if smoke else self.kernel_width
        points = min(self.kernel_points, SMOKE_KERNEL_POINTS) if smoke else self.kernel_points
        x = x_test[:points]
        with torch.random.fork_rng(devices=[]):  # the net is drawn on the CPU, then moved
            torch.manual_seed(self.kernel_seed)
            activation = HermiteActivation(self.designed_coefficients)
            net = ShallowNet(x.shape[1], width, 1, activation).to(device=x.device, dtype=x.dtype)
        if self.target.kind == "ntk":
            empirical = empirical_ntk(net, x, output=0, block_bytes=self.kernel_block_bytes)
        else:
            with torch.no_grad():
                empirical = empirical_nngp(net.features(x))
        rho = input_covariance(x)[0]
        designed = hermite_kernel(self.designed_coefficients, rho, self.target.kind)
        return {
            "kernel_rel_err": float(relative_error(empirical, designed)),
            "kernel_rel_err_target": float(relative_error(empirical, self.target(rho))),
            "kernel_width": float(width),
        }

    def _kernel_regression(self, train: Batch, test: Batch, smoke: bool) -> dict[str, Any]:
        rho_train = input_covariance(train["x"])[0]
        rho_test = input_covariance(test["x"], train["x"])[0]

        def scores(kernel_train: Tensor, kernel_test: Tensor) -> tuple[float, float]:
            predictions = kernel_ridge_predict(
                kernel_train, train["y_onehot"], kernel_test, self.ridge
            )
            mse = float(half_squared_error(predictions, test["y_onehot"].double()))
            return float(accuracy(predictions, test["y"])), mse

        results: dict[str, Any] = {}
        for name, kernel in (("target", self.target), ("designed", self._designed_kernel)):
            results[f"acc_kernel_{name}"], results[f"mse_kernel_{name}"] = scores(
                kernel(rho_train), kernel(rho_test)
            )
        depths = self.baseline_depths[:1] if smoke else self.baseline_depths
        for activation in DUALS:
            baseline = DeepKernel(activation, 1, "ntk", self.target.init)
            curves: dict[str, list[float]] = {"nngp": [], "ntk": []}
            for depth in depths:
                train_kernels = baseline.nngp_ntk(rho_train, depth)
                test_kernels = baseline.nngp_ntk(rho_test, depth)
                for kind, kernel_train, kernel_test in zip(
                    ("nngp", "ntk"), train_kernels, test_kernels, strict=True
                ):
                    curves[kind].append(scores(kernel_train, kernel_test)[0])
            for kind, values in curves.items():
                results[f"acc_{activation}_{kind}"] = values
        results["baseline_depths"] = [float(depth) for depth in depths]
        return results

    def _designed_kernel(self, rho: Tensor) -> Tensor:
        return hermite_kernel(self.designed_coefficients, rho, self.target.kind)
