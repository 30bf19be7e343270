"""CFNNs trained on their amplified vote, and the deterministic baselines (paper §1).

:class:`CFNNModule` trains a :class:`~dlt_runner.papers.coin_flipping.nets.StochasticNet` with
a loss over ``train_passes`` passes per minibatch (``losses.LOSSES``), logs the mean single-pass
accuracy, evaluates the plurality vote and, after the fit, measures the amplification curve:
test accuracy against the number of votes. A net without trainable parameters (the analytic
ball CFNN) is not trained: the fit stops before its first step.

:class:`BaselineModule` trains a deterministic classifier with cross-entropy (binary: BCE with
logits) and measures its test accuracy and neuron count.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, choose, positive_int
from dlt_runner.core.module import RunnerModule
from dlt_runner.data.transforms import Transform
from dlt_runner.papers.coin_flipping.analysis import (
    expected_curve,
    parameter_count,
    vote_curve,
)
from dlt_runner.papers.coin_flipping.losses import LOSSES
from dlt_runner.papers.coin_flipping.nets import StochasticNet
from dlt_runner.papers.coin_flipping.vote import (
    class_logits,
    label_counts,
    n_classes,
    pass_labels,
    plurality,
)

DEFAULT_VOTES = (1, 11, 101, 1001)
#: Generator streams: training passes, augmentation, evaluation passes, analysis passes.
_TRAIN_STREAM, _AUGMENT_STREAM = 0, 1
_EVAL_SEED_OFFSET = {"val": 1, "test": 2, "analysis": 3}


def _augment(transform: Transform | None, x: Tensor, generator: torch.Generator) -> Tensor:
    return x if transform is None else transform(x, generator)


def _test_batches(datamodule: Any, device: torch.device, size: int | None) -> Iterator[Batch]:
    test = datamodule.tensors("test")
    n = len(test["y"])
    size = n if size is None else size
    for start in range(0, n, size):
        yield {k: v[start : start + size].to(device) for k, v in test.items()}


class CFNNModule(RunnerModule):
    """Train a CFNN on its vote; evaluate the plurality of ``eval_votes`` passes.

    Per step: ``train/loss`` and ``train/pass_acc`` (accuracy of single passes). Val/test:
    ``loss``, ``pass_acc`` and ``acc`` (the ``eval_votes``-vote plurality). ``analysis``:
    ``acc_vote@n`` for every n in ``votes`` and the curve ``acc_vs_votes`` (with ``votes``),
    ``pass_acc``, ``hidden_neurons`` and ``parameters``; for a net with an exact per-pass
    probability (the analytic ball CFNN) also ``expected_acc_vs_votes``, the curve in
    expectation over the coin flips (binomial tails).

    Args:
        net: the stochastic net.
        optimizer: partial optimiser; ``None`` for a net with nothing to train.
        loss: one of ``losses.LOSSES``: vote_margin, soft_vote, per_pass.
        train_passes: passes per minibatch in the loss (weight samples per step).
        margin_scale: the vote-margin loss's slope.
        eval_votes: passes voted on in validation and test.
        votes: vote counts of the amplification curve.
        vote_chunk: passes evaluated together (memory bound).
        analysis_batch_size: test inputs per vote-curve batch; ``None`` for all at once.
        noise_seed: seeds the evaluation and analysis passes (bind to the run seed).
        augmentation: optional on-device transform of training inputs, ``t(x, generator)``.
    """

    def __init__(
        self,
        net: StochasticNet,
        optimizer: Any = None,
        loss: str = "vote_margin",
        train_passes: int = 32,
        margin_scale: float = 10.0,
        eval_votes: int = 101,
        votes: Sequence[int] = DEFAULT_VOTES,
        vote_chunk: int = 128,
        analysis_batch_size: int | None = None,
        noise_seed: int = 0,
        augmentation: Transform | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(net, StochasticNet):
            raise ConfigError(
                f"model.net must be a coin-flipping net (StochasticNet), got {type(net).__name__}; "
                "deterministic nets go with coin_flipping.module.BaselineModule"
            )
        super().__init__(net, optimizer, **kwargs)
        self.loss_name = loss
        self.objective = choose("loss", loss, LOSSES)
        self.train_passes = positive_int("model.train_passes", train_passes)
        self.margin_scale = float(margin_scale)
        self.eval_votes = positive_int("model.eval_votes", eval_votes)
        self.votes = sorted({positive_int("model.votes", n) for n in votes})
        self.vote_chunk = positive_int("model.vote_chunk", vote_chunk)
        self.analysis_batch_size = (
            None
            if analysis_batch_size is None
            else positive_int("model.analysis_batch_size", analysis_batch_size)
        )
        self.noise_seed = int(noise_seed)
        self.augmentation = augmentation
        self.trainable = bool(self.trainable_parameters())
        if self.trainable and optimizer is None:
            raise ConfigError("model.optimizer is required: the CFNN has trainable parameters")
        self._eval_generator: torch.Generator | None = None

    # ----------------------------------------------------------------- training
    def configure_optimizers(self) -> Any:
        return super().configure_optimizers() if self.trainable else None

    def on_train_start(self) -> None:
        super().on_train_start()
        if not self.trainable:
            self.trainer.should_stop = True  # nothing to train (the analytic CFNN)

    def training_step(self, chunk: list[Batch], chunk_idx: int) -> None:
        if self.trainable:
            super().training_step(chunk, chunk_idx)

    def loss(self, batch: Batch) -> tuple[Tensor, Mapping[str, Tensor]]:
        x = _augment(self.augmentation, batch["x"], self.step_generator(_AUGMENT_STREAM))
        generator = self.step_generator(_TRAIN_STREAM)
        logits = self.net(x, passes=self.train_passes, generator=generator)
        loss = self.objective(logits, batch["y"], self.margin_scale)
        labels = pass_labels(logits.detach(), self.net.pass_output, generator)
        return loss, {"pass_acc": (labels == batch["y"]).float().mean()}

    # ----------------------------------------------------------------- evaluation
    def _generator(self, purpose: str) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        return generator.manual_seed(self.noise_seed * 1_000 + _EVAL_SEED_OFFSET[purpose])

    def on_validation_epoch_start(self) -> None:
        self._eval_generator = self._generator("val")

    def on_test_epoch_start(self) -> None:
        self._eval_generator = self._generator("test")

    def evaluate(self, batch: Batch, split: str) -> dict[str, Tensor]:
        generator = self._eval_generator or self._generator(split)
        logits = self.net(batch["x"], passes=self.eval_votes, generator=generator)
        labels = pass_labels(logits, self.net.pass_output, generator)
        votes = plurality(label_counts(labels, n_classes(self.net)))
        return {
            "loss": self.objective(logits, batch["y"], self.margin_scale),
            "pass_acc": (labels == batch["y"]).float().mean(),
            "acc": (votes == batch["y"]).float().mean(),
        }

    @torch.no_grad()
    def analysis(self, datamodule: Any) -> dict[str, Any]:
        batches = list(_test_batches(datamodule, self.device, self.analysis_batch_size))
        curve = vote_curve(
            self.net, batches, self.votes, self._generator("analysis"), self.vote_chunk
        )
        results: dict[str, Any] = {
            f"acc_vote@{n}": acc for n, acc in zip(curve.votes, curve.accuracy, strict=True)
        }
        results.update(
            votes=list(curve.votes),
            acc_vs_votes=list(curve.accuracy),
            pass_acc=curve.pass_accuracy,
            hidden_neurons=self.net.hidden_neurons,
            parameters=parameter_count(self.net),
        )
        expected = expected_curve(self.net, batches, self.votes)
        if expected is not None:
            results["expected_acc_vs_votes"] = expected
        return results


class BaselineModule(RunnerModule):
    """A deterministic classifier trained with cross-entropy (binary: BCE with logits).

    Val/test: ``loss``, ``acc``. ``analysis``: test ``acc``, ``hidden_neurons`` (the width of a
    ``ReLUBaseline``; the feature count of a backbone) and ``parameters``.

    Args:
        net: a deterministic net returning logits (batch, outputs); outputs 1 = binary.
        augmentation: optional on-device transform of training inputs, ``t(x, generator)``.
        analysis_batch_size: test inputs per forward pass in the analysis.
    """

    def __init__(
        self,
        net: nn.Module,
        augmentation: Transform | None = None,
        analysis_batch_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(net, StochasticNet):
            raise ConfigError(
                "model.net is a coin-flipping net: use coin_flipping.module.CFNNModule"
            )
        super().__init__(net, **kwargs)
        self.augmentation = augmentation
        self.analysis_batch_size = (
            None
            if analysis_batch_size is None
            else positive_int("model.analysis_batch_size", analysis_batch_size)
        )

    def _cross_entropy(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = class_logits(self.net(x))
        return F.cross_entropy(logits, y), (logits.argmax(-1) == y).float().mean()

    def loss(self, batch: Batch) -> tuple[Tensor, Mapping[str, Tensor]]:
        x = _augment(self.augmentation, batch["x"], self.step_generator(_AUGMENT_STREAM))
        loss, accuracy = self._cross_entropy(x, batch["y"])
        return loss, {"acc": accuracy.detach()}

    def evaluate(self, batch: Batch, split: str) -> dict[str, Tensor]:
        loss, accuracy = self._cross_entropy(batch["x"], batch["y"])
        return {"loss": loss, "acc": accuracy}

    @torch.no_grad()
    def analysis(self, datamodule: Any) -> dict[str, Any]:
        correct, total = 0, 0
        for batch in _test_batches(datamodule, self.device, self.analysis_batch_size):
            predictions = class_logits(self.net(batch["x"])).argmax(-1)
            correct += int((predictions == batch["y"]).sum())
            total += len(batch["y"])
        neurons = getattr(self.net, "hidden_neurons", getattr(self.net, "n_features", 0))
        return {
            "acc": correct / total,
            "hidden_neurons": neurons,
            "parameters": parameter_count(self.net),
        }
