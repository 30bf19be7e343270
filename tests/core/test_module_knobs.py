"""Lightning's clipping and accumulation options, carried out by the runner's chunked loop.

Each setting trains the same float64 net for 50 optimiser steps twice: through
``RunnerModule`` (manual optimisation, chunks of 3 minibatches) and through a plain Lightning
module with automatic optimisation and the same Trainer options. Same minibatches, same
optimiser and schedule: the parameters must agree.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from dlt_runner.core.datamodule import TensorDataModule
from dlt_runner.core.errors import ConfigError
from dlt_runner.core.module import RunnerModule
from dlt_runner.core.optim_steps import StepOptions

from helpers import quiet_trainer

STEPS = 50


class Waves(TensorDataModule):
    """64 points, 4 minibatches of 16 an epoch (so accumulate 3 leaves a group of 1)."""

    def build(self):
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(64, 3, generator=generator)
        y = torch.sin(2 * x[:, :1]) + x[:, 1:2] * x[:, 2:3]
        return {"train": {"x": x, "y": y}}


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)).double()


def _mse(net: nn.Module, batch) -> torch.Tensor:
    return torch.mean((net(batch["x"]) - batch["y"]) ** 2)


def _optimizer(parameters):
    return torch.optim.SGD(parameters, lr=0.2, momentum=0.9)


def _scheduler(optimizer):
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, 0.98)


class Runner(RunnerModule):
    def loss(self, batch):
        return _mse(self.net, batch)


class Automatic(pl.LightningModule):
    """Lightning's own loop: one minibatch per training_step (chunks of length 1)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def training_step(self, chunk, chunk_idx):
        (batch,) = chunk
        return _mse(self.net, batch)

    def configure_optimizers(self):
        optimizer = _optimizer(self.parameters())
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": _scheduler(optimizer), "interval": "step"},
        }


def _trainer(**options) -> pl.Trainer:
    return quiet_trainer(STEPS, **options)


def _through_runner(options: dict, direct: bool = True) -> tuple[pl.Trainer, nn.Module]:
    module = Runner(_net(), _optimizer, _scheduler, log_every_n_steps=7)
    module.allow_direct_steps = direct
    module.step_options = StepOptions.from_trainer_options(options)
    trainer = _trainer()
    trainer.fit(module, datamodule=Waves(batch_size=16, steps_per_call=3, dtype="float64"))
    return trainer, module.net


def _through_lightning(options: dict) -> tuple[pl.Trainer, nn.Module]:
    module = Automatic(_net())
    trainer = _trainer(**options)
    trainer.fit(module, datamodule=Waves(batch_size=16, steps_per_call=1, dtype="float64"))
    return trainer, module.net


def _assert_close(a: nn.Module, b: nn.Module) -> None:
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-12)


SETTINGS = {
    "off": {},
    "clip_norm": {"gradient_clip_val": 0.05, "gradient_clip_algorithm": "norm"},
    "clip_value": {"gradient_clip_val": 0.01, "gradient_clip_algorithm": "value"},
    "accumulate_2": {"accumulate_grad_batches": 2},
    "accumulate_3": {"accumulate_grad_batches": 3},
    "clip_and_accumulate": {"gradient_clip_val": 0.05, "accumulate_grad_batches": 2},
}


@pytest.fixture(scope="module")
def off() -> nn.Module:
    return _through_runner({})[1]


@pytest.mark.parametrize("name", SETTINGS)
def test_runner_loop_equals_lightnings_automatic_optimisation(name, off):
    options = SETTINGS[name]
    runner_trainer, runner = _through_runner(options)
    lightning_trainer, lightning = _through_lightning(options)
    assert runner_trainer.global_step == lightning_trainer.global_step == STEPS
    _assert_close(runner, lightning)
    if options:  # the option changed the training, so the comparison above tested it
        moved = max(
            float((p - q).abs().max())
            for p, q in zip(runner.parameters(), off.parameters(), strict=True)
        )
        assert moved > 1e-3


@pytest.mark.parametrize("name", ["clip_norm", "accumulate_3"])
def test_lightnings_hooked_path_clips_and_accumulates_alike(name):
    _, direct = _through_runner(SETTINGS[name], direct=True)
    _, hooked = _through_runner(SETTINGS[name], direct=False)
    for p, q in zip(direct.parameters(), hooked.parameters(), strict=True):
        assert torch.equal(p, q)


def test_accumulation_consumes_n_minibatches_per_counted_step():
    consumed = []

    class Counting(Runner):
        def loss(self, batch):
            consumed.append(len(batch["x"]))
            return super().loss(batch)

    module = Counting(_net(), _optimizer)
    module.step_options = StepOptions(accumulate_grad_batches=2)
    trainer = pl.Trainer(max_steps=10, logger=False, enable_checkpointing=False)
    trainer.fit(module, datamodule=Waves(batch_size=16, steps_per_call=3, dtype="float64"))
    assert trainer.global_step == 10 and len(consumed) == 20


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gradient_clip_val": -1}, "trainer.gradient_clip_val"),
        ({"gradient_clip_val": "big"}, "trainer.gradient_clip_val"),
        ({"gradient_clip_algorithm": "l2"}, "choose one of: norm, value"),
        ({"accumulate_grad_batches": 0}, "trainer.accumulate_grad_batches"),
        ({"accumulate_grad_batches": 1.5}, "trainer.accumulate_grad_batches"),
    ],
)
def test_bad_options_name_the_trainer_key(options, message):
    with pytest.raises(ConfigError, match=message):
        StepOptions.from_trainer_options(options)


def test_zero_clip_value_is_off():
    assert StepOptions(gradient_clip_val=0).is_off
    assert not StepOptions(gradient_clip_val=0.5).is_off


def test_run_moves_the_options_onto_the_module(compose, tmp_path):
    from dlt_runner.run import Runtime, run

    cfg = compose(
        "experiment=imde/pendulum",
        "trainer.max_steps=12",
        "trainer.gradient_clip_val=0.5",
        "trainer.gradient_clip_algorithm=value",
        "trainer.accumulate_grad_batches=2",
        "logger=none",
        "callbacks=none",
        "test=false",
        "data.n_train=64",
        "model.energy_horizon=0",
        "model.trajectory_horizon=0",
    )
    record = run(cfg, Runtime(run_dir=tmp_path / "run"))
    assert record["status"] == "ok" and record["timing"]["steps"] == 12
    assert cfg.trainer.gradient_clip_val == 0.5, "the logged config keeps the user's values"
