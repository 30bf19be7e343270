"""Named optimisers: rounds (n_critic), simultaneous updates, schedulers, logging, resume."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn
from torch.nn import functional as F

from dlt_runner.core.datamodule import TensorDataModule
from dlt_runner.core.errors import ConfigError
from dlt_runner.core.module import RunnerModule
from dlt_runner.core.optim_steps import StepOptions


class Ring(TensorDataModule):
    """96 points near the unit circle: 4 minibatches of 24 an epoch (rounds of 3 straddle it)."""

    def build(self):
        generator = torch.Generator().manual_seed(0)
        angle = 2 * math.pi * torch.rand(96, generator=generator)
        x = torch.stack([angle.cos(), angle.sin()], 1) + 0.05 * torch.randn(
            96, 2, generator=generator
        )
        return {"train": {"x": x}, "val": {"x": x[:48]}}


def _mlp(inputs: int, outputs: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, 16), nn.Tanh(), nn.Linear(16, outputs))


class ToyGAN(RunnerModule):
    """Non-saturating GAN (Goodfellow et al. 2014, §3) with ``n_critic`` critic steps a round."""

    def __init__(self, n_critic: int = 2, **kwargs) -> None:
        torch.manual_seed(0)
        super().__init__(
            net=nn.ModuleDict({"discriminator": _mlp(2, 1), "generator": _mlp(4, 2)}),
            steps_per_round={"discriminator": n_critic, "generator": 1},
            **kwargs,
        )
        self.calls: list[str] = []

    def loss(self, batch, optimizer_name):
        if self.training:
            self.calls.append(optimizer_name)
        x = batch["x"]
        noise = torch.randn(len(x), 4, generator=self.step_generator(), dtype=x.dtype)
        fake_logits = self.net["discriminator"](self.net["generator"](noise))
        if optimizer_name == "generator":
            return F.softplus(-fake_logits).mean()
        real_logits = self.net["discriminator"](x)
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        return loss, {"real_score": torch.sigmoid(real_logits).mean()}


def _gan(**kwargs) -> ToyGAN:
    return ToyGAN(
        optimizer={
            "discriminator": lambda p: torch.optim.Adam(p, lr=4e-3),
            "generator": lambda p: torch.optim.Adam(p, lr=1e-3, betas=(0.5, 0.9)),
        },
        scheduler={"generator": lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)},
        log_every_n_steps=2,
        **kwargs,
    )


def _trainer(tmp_path, **options) -> pl.Trainer:
    defaults = {
        "logger": pl.loggers.CSVLogger(tmp_path, name="csv"),
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "accelerator": "cpu",
        "devices": 1,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
    }
    return pl.Trainer(**{**defaults, **options})


def _data() -> Ring:
    return Ring(batch_size=24, steps_per_call=3, seed=4)


def test_a_round_is_n_critic_discriminator_steps_then_one_generator_step(tmp_path):
    pl.seed_everything(11)
    module = _gan(n_critic=2)
    trainer = _trainer(tmp_path, max_steps=7)
    trainer.fit(module, datamodule=_data())
    assert trainer.global_step == 7, "global_step counts rounds (generator steps)"
    assert module.calls == ["discriminator", "discriminator", "generator"] * 7
    discriminator, generator = module.optimizers()
    steps = [
        int(next(iter(o.optimizer.state.values()))["step"]) for o in (discriminator, generator)
    ]
    assert steps == [14, 7]
    assert generator.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.9**7)
    assert discriminator.param_groups[0]["lr"] == 4e-3
    logged = trainer.logged_metrics
    assert {"train/loss_discriminator", "train/loss_generator", "train/real_score"} <= set(logged)
    assert {"train/lr_discriminator", "train/lr_generator"} <= set(logged)
    validated = trainer.validate(module, datamodule=_data(), verbose=False)[0]
    assert {"val/loss_discriminator", "val/loss_generator"} == set(validated)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_resumed_gan_equals_the_uninterrupted_run(tmp_path, accumulate):
    options = StepOptions(gradient_clip_val=1.0, accumulate_grad_batches=accumulate)
    pl.seed_everything(5)
    whole = _gan()
    whole.step_options = options
    _trainer(tmp_path / "whole", max_steps=6).fit(whole, datamodule=_data())

    pl.seed_everything(5)
    first = _gan()
    first.step_options = options
    # The runner's checkpoint (last.ckpt at every epoch end): 8 minibatches is inside round 3.
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_on_train_epoch_end=True)
    interrupted = _trainer(
        tmp_path / "first", max_epochs=2, enable_checkpointing=True, callbacks=[saver]
    )
    interrupted.fit(first, datamodule=_data())
    assert first._position != (0, 0), "the checkpoint falls inside a round"
    checkpoint = tmp_path / "ckpt" / "last.ckpt"

    pl.seed_everything(5)
    resumed = _gan()
    resumed.step_options = options
    _trainer(tmp_path / "resumed", max_steps=6).fit(
        resumed, datamodule=_data(), ckpt_path=checkpoint
    )
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert (
        whole.optimizers()[1].param_groups[0]["lr"] == resumed.optimizers()[1].param_groups[0]["lr"]
    )


def test_a_diverging_player_stops_the_run(tmp_path):
    from dlt_runner.core.callbacks import DIVERGED_KEY, DivergenceGuard

    class Exploding(ToyGAN):
        def loss(self, batch, optimizer_name):
            loss = super().loss(batch, optimizer_name)
            if optimizer_name == "generator" and self.global_step >= 3:
                return loss * float("nan")
            return loss

    sgd = lambda p: torch.optim.SGD(p, lr=0.01)  # noqa: E731
    module = Exploding(optimizer={"discriminator": sgd, "generator": sgd})
    trainer = _trainer(tmp_path, max_steps=50, callbacks=[DivergenceGuard()])
    trainer.fit(module, datamodule=_data())
    assert trainer.callback_metrics[DIVERGED_KEY] <= 5 and trainer.global_step < 50


class Scalar(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value, dtype=torch.float64))


class Bilinear(RunnerModule):
    """min_x max_y x·y: player x descends x·y, player y descends −x·y (Gidel et al. 2019, §2)."""

    def __init__(self, simultaneous: bool) -> None:
        super().__init__(
            net=nn.ModuleDict({"x": Scalar(1.0), "y": Scalar(0.5)}),
            optimizer={name: lambda p: torch.optim.SGD(p, lr=0.1) for name in ("x", "y")},
            simultaneous_steps=simultaneous,
        )

    def loss(self, batch, optimizer_name):
        product = self.net["x"].value * self.net["y"].value
        return product if optimizer_name == "x" else -product


@pytest.mark.parametrize("simultaneous", [True, False])
def test_simultaneous_and_alternating_updates_follow_their_linear_maps(tmp_path, simultaneous):
    rate, rounds = 0.1, 30
    module = Bilinear(simultaneous)
    trainer = _trainer(tmp_path, max_steps=rounds)
    trainer.fit(module, datamodule=_data())
    # Simultaneous: (x, y) <- (x - r y, y + r x). Alternating: y uses the new x.
    if simultaneous:
        step = torch.tensor([[1.0, -rate], [rate, 1.0]], dtype=torch.float64)
    else:
        step = torch.tensor([[1.0, -rate], [rate, 1.0 - rate**2]], dtype=torch.float64)
    expected = torch.linalg.matrix_power(step, rounds) @ torch.tensor(
        [1.0, 0.5], dtype=torch.float64
    )
    got = torch.stack([module.net["x"].value, module.net["y"].value]).detach()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
    if simultaneous:  # the simultaneous spiral grows by sqrt(1 + r^2) a step
        assert float(got.norm()) == pytest.approx(1.25**0.5 * (1 + rate**2) ** (rounds / 2))


def test_round_configuration_errors_name_the_keys():
    with pytest.raises(ConfigError, match="model.steps_per_round names critic"):
        RunnerModule(nn.Linear(1, 1), {"discriminator": None}, steps_per_round={"critic": 5})
    with pytest.raises(ConfigError, match="model.steps_per_round.generator"):
        RunnerModule(nn.Linear(1, 1), {"generator": None}, steps_per_round={"generator": 0})
    with pytest.raises(ConfigError, match="simultaneous"):
        RunnerModule(
            nn.Linear(1, 1),
            {"x": None, "y": None},
            steps_per_round={"x": 2},
            simultaneous_steps=True,
        )
    with pytest.raises(ConfigError, match="model.scheduler maps optimiser names"):
        RunnerModule(nn.Linear(1, 1), {"x": None}, scheduler={"z": None})


def test_named_partial_optimisers_and_schedulers_build_from_a_config(tmp_path):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    adam = {"_target_": "torch.optim.Adam", "_partial_": True}
    cfg = OmegaConf.create(
        {
            "_target_": f"{__name__}.ToyGAN",
            "n_critic": 3,
            "optimizer": {"discriminator": {**adam, "lr": 4e-3}, "generator": {**adam, "lr": 1e-3}},
            "scheduler": {
                "generator": {
                    "_target_": "dlt_runner.core.schedules.cosine_decay",
                    "_partial_": True,
                    "steps": 4,
                }
            },
        }
    )
    module = instantiate(cfg)
    trainer = _trainer(tmp_path, max_steps=4)
    trainer.fit(module, datamodule=_data())
    assert module.calls == (["discriminator"] * 3 + ["generator"]) * 4
    discriminator, generator = module.optimizers()
    assert generator.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert discriminator.param_groups[0]["lr"] == 4e-3
