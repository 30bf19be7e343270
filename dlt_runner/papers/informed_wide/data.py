"""Synthetic labels plus knowledge, with the paper's two imperfectness knobs.

x ~ N(0, (4/d) I), d = 5; truth f* and knowledge g from ``knowledge.py``. Noisy labels
y = f*(x) + N(0, label_noise^2) on ``n_labelled`` points; knowledge labels g on those points
and on ``n_unlabelled`` extra ones (knowledge on the labelled points is what lets it
regularise label noise; ``knowledge_on_labelled: false`` gives the disjoint variant).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import ConfigError, choose, positive_int
from dlt_runner.papers.informed_wide.knowledge import (
    INPUT_DIM,
    KNOWLEDGE_ERRORS,
    knowledge_labels,
    truth,
)

SMOKE_POINTS = 32


class InformedRegressionData(TensorDataModule):
    """Splits of tensors keyed ``x`` (n, 5), ``y`` (noisy label; 0 where unlabelled),
    ``labelled`` and ``informed`` (bool masks), ``knowledge`` (g(x)) and ``truth`` (f*(x)).

    ``train`` holds the labelled points first, then the unlabelled knowledge points. ``val``
    and ``test`` are fresh points, all labelled (noisy) and informed; ``truth`` there is the
    noise-free target the test risk is measured against (``truth`` in ``train`` is for the
    end-of-run analysis only; the loss never reads it).

    Args:
        n_labelled: labelled points (CPU scale: 60-100; the paper-scale sweep 10-300).
        n_unlabelled: extra knowledge points without labels.
        n_val, n_test: evaluation points.
        label_noise: sigma of the Gaussian label noise (label imperfectness).
        knowledge: the knowledge error's name (``knowledge.KNOWLEDGE_ERRORS``).
        knowledge_error_scale: s in g = f* + s e (knowledge imperfectness; 0 = perfect).
        knowledge_on_labelled: whether the labelled points are also knowledge points.
    """

    def __init__(
        self,
        n_labelled: int = 60,
        n_unlabelled: int = 200,
        n_val: int = 500,
        n_test: int = 2000,
        label_noise: float = 0.4,
        knowledge: str = "missing_term",
        knowledge_error_scale: float = 1.0,
        knowledge_on_labelled: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        choose("knowledge", knowledge, KNOWLEDGE_ERRORS)
        sizes = {
            "n_labelled": n_labelled,
            "n_unlabelled": n_unlabelled,
            "n_val": n_val,
            "n_test": n_test,
        }
        for name, size in sizes.items():
            if int(size) < 0:
                raise ConfigError(f"data.{name} must be >= 0, got {size}")
        positive_int("data.n_test", n_test)  # the analysis measures the test risk
        if int(n_labelled) + int(n_unlabelled) < 1:
            raise ConfigError("data.n_labelled + data.n_unlabelled must be >= 1 (no train points)")
        if float(label_noise) < 0:
            raise ConfigError(f"data.label_noise must be >= 0, got {label_noise}")
        self.n_labelled = int(n_labelled)
        self.n_unlabelled = int(n_unlabelled)
        self.n_val = int(n_val)
        self.n_test = int(n_test)
        self.label_noise = float(label_noise)
        self.knowledge = knowledge
        self.knowledge_error_scale = float(knowledge_error_scale)
        self.knowledge_on_labelled = bool(knowledge_on_labelled)

    def build(self) -> dict[str, Batch]:
        generator = torch.Generator().manual_seed(self.seed)
        # debug=fast: at most SMOKE_POINTS per part, so paper-width nets smoke-test in seconds
        size = (lambda n: min(n, SMOKE_POINTS)) if self.smoke else (lambda n: n)
        n_labelled, n_unlabelled = size(self.n_labelled), size(self.n_unlabelled)
        n_train = n_labelled + n_unlabelled
        labelled = torch.arange(n_train) < n_labelled
        informed = ~labelled | self.knowledge_on_labelled
        splits = {"train": self._points(n_train, labelled, informed, generator)}
        for split, n in (("val", size(self.n_val)), ("test", size(self.n_test))):
            if n > 0:
                everywhere = torch.ones(n, dtype=torch.bool)
                splits[split] = self._points(n, everywhere, everywhere, generator)
        return splits

    def _points(
        self, n: int, labelled: Tensor, informed: Tensor, generator: torch.Generator
    ) -> Batch:
        x = math.sqrt(4.0 / INPUT_DIM) * torch.randn(
            n, INPUT_DIM, generator=generator, dtype=torch.float64
        )
        target = truth(x)
        noise = self.label_noise * torch.randn(n, generator=generator, dtype=x.dtype)
        return {
            "x": x,
            "y": torch.where(labelled, target + noise, 0.0),
            "labelled": labelled,
            "informed": informed,
            "knowledge": knowledge_labels(x, self.knowledge, self.knowledge_error_scale),
            "truth": target,
        }
