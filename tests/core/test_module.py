"""RunnerModule: optimiser steps per chunk, max_steps in optimiser steps, direct stepping."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from dlt_runner.core.datamodule import TensorDataModule
from dlt_runner.core.module import RunnerModule

from helpers import quiet_trainer


class Regression(TensorDataModule):
    def build(self):
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(64, 3, generator=generator)
        return {
            "train": {"x": x, "y": x.sum(1, keepdim=True)},
            "val": {"x": x, "y": x.sum(1, keepdim=True)},
        }


class LinearModule(RunnerModule):
    def loss(self, batch):
        return torch.mean((self.net(batch["x"]) - batch["y"]) ** 2)


def _fit(direct: bool, max_steps: int = 23, steps_per_call: int = 5, batch_size: int | None = 16):
    torch.manual_seed(0)
    module = LinearModule(
        nn.Linear(3, 1),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
        scheduler=lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.99),
        log_every_n_steps=4,
    )
    module.allow_direct_steps = direct
    trainer = quiet_trainer(max_steps, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=Regression(batch_size=batch_size, steps_per_call=steps_per_call))
    return trainer, module


def test_max_steps_counts_optimiser_steps_even_mid_chunk():
    trainer, module = _fit(direct=True, max_steps=23, steps_per_call=5)
    assert trainer.global_step == 23
    assert module.optimizers().optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.99**23)


def test_direct_steps_equal_lightnings_manual_path_exactly():
    (direct_trainer, direct), (slow_trainer, slow) = _fit(True), _fit(False)
    assert direct._direct_steps is True and slow._direct_steps is False
    assert direct_trainer.global_step == slow_trainer.global_step
    for a, b in zip(direct.parameters(), slow.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_callback_using_backward_hooks_turns_direct_steps_off():
    class GradientWatcher(pl.Callback):
        def on_after_backward(self, trainer, pl_module):
            pass

    module = LinearModule(nn.Linear(3, 1), lambda p: torch.optim.SGD(p, lr=0.1))
    trainer = pl.Trainer(
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[GradientWatcher()],
    )
    trainer.fit(module, datamodule=Regression(batch_size=None, steps_per_call=3))
    assert module._direct_steps is False and trainer.global_step == 3


class InputGradient(LinearModule):
    """Evaluation that differentiates: the input gradient of a linear net is its weight row."""

    eval_needs_grad = True

    def evaluate(self, batch, split):
        with torch.enable_grad():
            x = batch["x"].clone().requires_grad_(True)
            (gradient,) = torch.autograd.grad(self.net(x).sum(), x)
        return {"input_gradient_norm": gradient.norm(dim=1).mean()}


def test_evaluation_that_needs_gradients_runs_in_validate_and_test():
    from omegaconf import OmegaConf

    from dlt_runner.run import _runner_module_options

    module = InputGradient(nn.Linear(3, 1), lambda p: torch.optim.SGD(p, lr=0.1))
    options = _runner_module_options(OmegaConf.create({"max_steps": 3}), module)
    assert options["inference_mode"] is False
    trainer = pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False, **options)
    data = Regression(batch_size=None, steps_per_call=3)
    trainer.fit(module, datamodule=data)
    expected = float(module.net.weight.norm())
    (validated,) = trainer.validate(module, datamodule=data, verbose=False)
    assert validated["val/input_gradient_norm"] == pytest.approx(expected)
    data.splits["test"] = data.splits["val"]
    (tested,) = trainer.test(module, datamodule=data, verbose=False)
    assert tested["test/input_gradient_norm"] == pytest.approx(expected)


def test_evaluation_that_needs_gradients_explains_an_inference_mode_trainer():
    module = InputGradient(nn.Linear(3, 1), lambda p: torch.optim.SGD(p, lr=0.1))
    trainer = pl.Trainer(logger=False, enable_checkpointing=False)
    with pytest.raises(RuntimeError, match="inference_mode=False"):
        trainer.validate(module, datamodule=Regression(batch_size=None))


def test_pending_accumulated_gradients_travel_in_the_checkpoint():
    module = LinearModule(nn.Linear(3, 1), lambda p: torch.optim.SGD(p, lr=0.1))
    module._position = (0, 1)  # one minibatch into an accumulation group
    for parameter in module.parameters():
        parameter.grad = torch.randn_like(parameter)
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    restored = LinearModule(nn.Linear(3, 1), lambda p: torch.optim.SGD(p, lr=0.1))
    restored.on_load_checkpoint(checkpoint)
    assert restored._position == (0, 1)
    for parameter, grad in zip(module.parameters(), restored._pending_grads, strict=True):
        assert torch.equal(parameter.grad, grad)
