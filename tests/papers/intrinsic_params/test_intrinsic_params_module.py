"""Frozen parts stay frozen; phi_in pre-training; the claim's verdict."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from dlt_runner.papers.intrinsic_params import claim
from dlt_runner.papers.intrinsic_params.data import RelatedDigits
from dlt_runner.papers.intrinsic_params.module import IntrinsicModule
from dlt_runner.papers.intrinsic_params.nets import IntrinsicNet, PooledConvFeatures
from dlt_runner.sweeps.runs import Run

from helpers import quiet_trainer, train_full_batch

ADAM = functools.partial(torch.optim.Adam, lr=3e-3)


def _module(phi_in: str = "random", width: int = 8, epochs: int = 2) -> IntrinsicModule:
    torch.manual_seed(0)
    net = IntrinsicNet(PooledConvFeatures(channels=(width, width)), k=4, hidden=32)
    return IntrinsicModule(net, ADAM, phi_in=phi_in, pretrain_epochs=epochs)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def test_only_the_intrinsic_block_is_optimised_and_the_rest_is_unchanged():
    module = _module()
    net = module.net
    expected = {id(p) for p in [*net.phi_f.parameters(), *net.output.parameters()]}
    assert {id(p) for p in module.trainable_parameters()} == expected
    before = _snapshot(net)
    batch = {"x": torch.rand(32, 1, 8, 8), "y": torch.randint(0, 5, (32,))}
    losses = train_full_batch(module, batch, steps=20)
    assert losses[-1] < losses[0]
    after = _snapshot(net)
    for name, p in net.named_parameters():
        trained = name.split(".")[0] in ("phi_f", "output")
        assert (p.grad is not None) == trained, name
        assert torch.equal(before[name], after[name]) != trained, name


def test_pretraining_trains_phi_in_only_then_freezes_it():
    module = _module("pretrained")
    data = RelatedDigits()
    before = _snapshot(module.net)
    head_before = module.pretrain_head.weight.detach().clone()
    module.pretrain_phi_in(data, epochs=2)
    after = _snapshot(module.net)
    for name in before:
        assert torch.equal(before[name], after[name]) != name.startswith("phi_in."), name
    assert not torch.equal(head_before, module.pretrain_head.weight)
    assert not any(p.requires_grad for p in module.net.phi_in.parameters())
    assert not any(p.requires_grad for p in module.pretrain_head.parameters())
    assert all(p.grad is None for p in module.net.phi_in.parameters())
    assert bool(module.phi_in_ready)
    curves = module.pretrain_curves
    assert (
        len(curves["pretrain_loss"]) == 2
        and curves["pretrain_loss"][1] < curves["pretrain_loss"][0]
    )


def test_lightning_fit_pretrains_once_and_keeps_frozen_parts(tmp_path):
    module = _module("pretrained", width=16, epochs=3)
    data = RelatedDigits(batch_size=64, steps_per_call=5)
    before = _snapshot(module.net)
    trainer = quiet_trainer(10, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    after = _snapshot(module.net)
    assert not torch.equal(before["phi_in.0.weight"], after["phi_in.0.weight"])  # pre-trained
    for name in before:
        if name.startswith("phi_out."):
            assert torch.equal(before[name], after[name]), name
        if name.startswith(("phi_f.", "output.")):
            assert not torch.equal(before[name], after[name]), name
    results = module.analysis(data)
    assert results["analysis/n_trainable"] == 64 * 4 + 4 + 10  # 16 channels x 2 x 2 features
    assert 0.0 <= results["analysis/test_acc_target_task"] <= 1.0
    assert results["analysis/pretrain_test_acc"] > 0.5  # 3 epochs on digits 0-4 (0.80 seen)

    # A run whose phi_in is already pre-trained (a resumed one) does not pre-train again.
    pretrained = _snapshot(module.net.phi_in)
    trainer = quiet_trainer(12, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    for name, p in module.net.phi_in.named_parameters():
        assert torch.equal(pretrained[name], p), name


def _run(sweep: str, metrics: dict, seed: int = 0) -> Run:
    return Run(sweep, {"seed": str(seed)}, "ok", metrics, {}, Path("x"))


def _intrinsic(pretrained: bool, k: int, acc: float, seed: int = 0) -> Run:
    return _run(
        "intrinsic" if k == claim.CLAIM_K else "curve",
        {
            "analysis/pretrained": float(pretrained),
            "analysis/k": float(k),
            "analysis/test_acc_target_task": acc,
            "analysis/n_trainable": 257.0 * k + 10,
            "analysis/n_total": 43223.0,
            "analysis/trainable_fraction": (257.0 * k + 10) / 43223,
            "analysis/pretrain_test_acc": 0.99,
        },
        seed,
    )


def _runs(full: float, pretrained: float, random: float) -> list[Run]:
    runs = [_run("full", {"analysis/test_acc_target_task": full})]
    for k in (2, 4):
        runs += [_intrinsic(True, k, pretrained - 0.05), _intrinsic(False, k, random - 0.1)]
    return [*runs, _intrinsic(True, 8, pretrained), _intrinsic(False, 8, random)]


def test_verdict_holds_and_fails_on_each_statement():
    result = claim.verdict(_runs(0.997, 0.970, 0.902))
    assert result.holds and len(result.checks) == 3
    assert any(note.startswith("k=2:") for note in result.notes)
    gap = claim.verdict(_runs(0.997, 0.940, 0.902))
    assert [c.holds for c in gap.checks] == [True, False, True]
    lead = claim.verdict(_runs(0.997, 0.970, 0.975))
    assert [c.holds for c in lead.checks] == [True, True, False]
    runs = _runs(0.997, 0.970, 0.902)
    runs[-2].metrics["analysis/trainable_fraction"] = 0.06
    assert [c.holds for c in claim.verdict(runs).checks] == [False, True, True]
    assert not claim.verdict(_runs(0.997, 0.970, 0.902)[1:]).holds  # no full-training run


def test_verdict_judges_the_means_over_seeds():
    """Seed 1 alone would fail the lead (random 0.95 > pre-trained 0.94); the means decide."""
    runs = [
        _run("full", {"analysis/test_acc_target_task": acc}, seed)
        for seed, acc in enumerate((0.99, 0.98, 1.0))
    ]
    for seed, (pretrained, random) in enumerate(((0.97, 0.90), (0.94, 0.95), (0.97, 0.92))):
        runs += [_intrinsic(True, 8, pretrained, seed), _intrinsic(False, 8, random, seed)]
    runs += [_intrinsic(True, 2, 0.8), _intrinsic(False, 2, 0.6)]
    result = claim.verdict(runs)
    assert result.holds, result.checks
    lead = result.checks[2].measured
    assert "0.960 vs 0.923" in lead and "n=3, 3" in lead
    assert "k=2: test acc random 0.600, pre-trained 0.800" in result.notes[0]
    assert [note.split(":")[0] for note in result.notes[:2]] == ["k=2", "k=8"]
