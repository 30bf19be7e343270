"""Pre-train a classifier, then test GCV's prediction of KRR risk on its kernels."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, choose
from dlt_runner.core.module import OptimizerFactory, RunnerModule
from dlt_runner.papers.gcv_rmt.gcv import log_ridge_grid, risk_curves
from dlt_runner.papers.gcv_rmt.representations import RepresentationSources, build_representations
from dlt_runner.theory.metrics import accuracy

DEFAULT_REPRESENTATIONS = ("raw_linear", "random_relu_features", "entk_init", "entk_pretrained")
NTK_DTYPES = {"float32": torch.float32, "float64": torch.float64}
TARGETS = "y_onehot"


class KernelGCVModule(RunnerModule):
    """``fit`` pre-trains ``net``; ``analysis`` runs KRR on every representation's kernel.

    - fit: cross-entropy on the ``train`` split, the pre-training set, disjoint from the KRR
      sets (CPU scale: 300 digits, 300 full-batch Adam steps at lr 1e-3).
    - test: the pre-trained classifier's own ``test/loss`` and ``test/acc``.
    - analysis: for each representation, its kernel on (``krr_train_split``, ``krr_test_split``),
      normalised to tr(K)/n = 1 and eigendecomposed once; for every ridge of the grid the GCV
      estimate, the train and test risk (squared error summed over the ``y_onehot`` outputs),
      the test accuracy and |GCV - test| / test, as curves ``analysis/<name>/<curve>`` with
      ``analysis/log10_ridge`` as their x values; the scalars of ``RiskCurves.summary`` as
      ``analysis/<name>/<scalar>``; ``analysis/worst_median_rel_err`` over representations.

    A copy of ``net`` is kept at its initial weights (frozen, saved in checkpoints) for the
    random-init representations (``entk_init``, ``features_init``).

    Args:
        net: the classifier whose kernels are studied (e.g. `dlt_runner.nn.MLP`).
        representations: names from ``representations.REPRESENTATIONS``.
        log10_ridge_min, log10_ridge_max, n_ridges: lambda = logspace(min, max, n).
        krr_train_split, krr_test_split: datamodule splits KRR trains and is tested on.
        random_features_width, random_features_std, random_features_seed: random ReLU
            features (std None = 1 / sqrt(input dimension)).
        ntk_dtype: ``float64`` or ``float32``, the dtype the eNTK is computed in.
        ntk_block_bytes: memory for one block of per-sample Jacobians in the eNTK.
        decay_fit_ranks: (first, last) eigenvalue ranks of the power-law fit of ``eigen_decay``.
        **kwargs: the base module's options (``scheduler``, ``log_every_n_steps``, ...;
            see ``dlt_runner.core.module.RunnerModule``).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        representations: Sequence[str] = DEFAULT_REPRESENTATIONS,
        log10_ridge_min: float = -6.0,
        log10_ridge_max: float = 0.0,
        n_ridges: int = 13,
        krr_train_split: str = "val",
        krr_test_split: str = "test",
        random_features_width: int = 2000,
        random_features_std: float | None = None,
        random_features_seed: int = 0,
        ntk_dtype: str = "float64",
        ntk_block_bytes: int = 2**27,
        decay_fit_ranks: Sequence[int] = (5, 200),
        **kwargs: Any,
    ) -> None:
        super().__init__(net, optimizer, **kwargs)
        self.initial_net = copy.deepcopy(net).requires_grad_(False)
        try:
            self.ridges = log_ridge_grid(
                float(log10_ridge_min), float(log10_ridge_max), int(n_ridges)
            )
        except ValueError as error:
            raise ConfigError(f"model ridge grid: {error}") from None
        if len(decay_fit_ranks) != 2 or not 1 <= int(decay_fit_ranks[0]) < int(decay_fit_ranks[1]):
            raise ConfigError(
                f"model.decay_fit_ranks must be [first, last], 1 <= first < last; "
                f"got {list(decay_fit_ranks)}"
            )
        self.decay_fit_ranks = (int(decay_fit_ranks[0]), int(decay_fit_ranks[1]))
        self.krr_train_split, self.krr_test_split = str(krr_train_split), str(krr_test_split)
        sources = RepresentationSources(
            initial_net=self.initial_net,
            pretrained_net=self.net,
            random_features_width=int(random_features_width),
            random_features_std=None if random_features_std is None else float(random_features_std),
            seed=int(random_features_seed),
            ntk_dtype=choose("ntk_dtype", ntk_dtype, NTK_DTYPES),
            ntk_block_bytes=int(ntk_block_bytes),
        )
        self.representations = build_representations(representations, sources)

    def on_fit_start(self) -> None:
        # Fail before pre-training, not after it, when a KRR split is missing.
        datamodule = self.trainer.datamodule
        if datamodule is not None:
            for split in (self.krr_train_split, self.krr_test_split):
                datamodule.tensors(split)

    def loss(self, batch: Batch) -> Tensor:
        return F.cross_entropy(self.net(batch["x"]), batch["y"])

    def evaluate(self, batch: Batch, split: str) -> dict[str, Tensor]:
        logits = self.net(batch["x"])
        return {
            "loss": F.cross_entropy(logits, batch["y"]),
            "acc": accuracy(logits, batch["y"]),
        }

    def analysis(self, datamodule: Any) -> dict[str, float | list[float]]:
        started = time.perf_counter()
        train = datamodule.tensors(self.krr_train_split)
        test = datamodule.tensors(self.krr_test_split)
        results: dict[str, float | list[float]] = {
            "analysis/log10_ridge": self.ridges.log10().tolist()
        }
        worst = 0.0
        for name, representation in self.representations.items():
            kernel_started = time.perf_counter()
            K_train, K_test_train = representation.gram(train["x"], test["x"])
            curves = risk_curves(K_train, K_test_train, train[TARGETS], test[TARGETS], self.ridges)
            summary = curves.summary(self.decay_fit_ranks)
            summary["seconds"] = time.perf_counter() - kernel_started
            for metric, value in {**curves.as_lists(), **summary}.items():
                results[f"analysis/{name}/{metric}"] = value
            worst = max(worst, summary["median_rel_err"])
        results["analysis/worst_median_rel_err"] = worst
        results["analysis/seconds"] = time.perf_counter() - started
        return results
