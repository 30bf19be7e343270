"""Tensor completion wiring: data, the module's tracking and analysis, the runner, the verdict."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.tensor_factorization.analysis import effective_rank, relative_error
from dlt_runner.papers.tensor_factorization.claim import verdict
from dlt_runner.papers.tensor_factorization.data import TensorCompletionData
from dlt_runner.papers.tensor_factorization.module import TensorCompletionModule
from dlt_runner.papers.tensor_factorization.nets import DeepCPFactorization
from dlt_runner.papers.tensor_factorization.optim import GroupRMSprop
from dlt_runner.sweeps.runs import Run


def _data(**kwargs) -> TensorCompletionData:
    data = TensorCompletionData(**{"shape": (5, 6, 7), "n_observed": 80, **kwargs})
    data.prepare()
    return data


def test_data_is_a_rank_one_tensor_split_into_observed_and_unobserved_entries():
    data = _data(seed=3, n_val=20)
    truth = data.ground_truth()
    assert truth.pow(2).mean().item() == pytest.approx(1.0)
    for mode in range(3):
        assert effective_rank(truth[None], mode).item() == pytest.approx(1.0, abs=1e-6)
    splits = data.splits
    assert {name: len(split["target"]) for name, split in splits.items()} == {
        "train": 80,
        "val": 20,
        "test": 210 - 100,
    }
    flat = torch.cat([s["index"] @ torch.tensor([42, 7, 1]) for s in splits.values()])
    assert sorted(flat.tolist()) == list(range(210)), "splits partition the entries"
    for split in splits.values():
        i = split["index"]
        assert torch.allclose(split["target"], truth[i[:, 0], i[:, 1], i[:, 2]].float())
    assert torch.equal(_data(seed=3, n_val=20).splits["train"]["index"], splits["train"]["index"])
    assert not torch.equal(_data(seed=4).splits["train"]["index"], splits["train"]["index"])
    assert "val" not in _data(seed=3).splits
    rank3 = TensorCompletionData(
        shape=(6, 6, 6), cp_rank=3, n_observed=50, normalisation="frobenius"
    )
    assert torch.linalg.matrix_rank(rank3.ground_truth().reshape(6, 36)).item() == 3
    assert rank3.ground_truth().norm().item() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="n_observed"):
        TensorCompletionData(shape=(3, 3, 3), n_observed=27)


def _module(**kwargs) -> TensorCompletionModule:
    torch.manual_seed(0)
    net = DeepCPFactorization((5, 6, 7), rank=4, depth=2, init_std=0.5, n_models=3)
    return TensorCompletionModule(
        net, optimizer=lambda p: GroupRMSprop(p, lr=0.05, n_models=3), **kwargs
    )


def _train(module: TensorCompletionModule, data: TensorCompletionData, steps: int) -> list[float]:
    optimizer = module.optimizer_factory(module.trainable_parameters())
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss, _ = module.loss(data.splits["train"])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_loss_sums_the_initialisations_mse_and_training_fits_the_observed_entries():
    data = _data(seed=0)
    module = _module()
    losses = _train(module, data, 300)
    assert losses[-1] < 0.03 * losses[0]
    train = data.splits["train"]
    per_init = (module.net.entries(train["index"]) - train["target"]).pow(2).mean(dim=1)
    assert module.loss(train)[0].item() == pytest.approx(per_init.sum().item(), rel=1e-5)


def test_matched_loss_records_the_test_error_at_the_first_crossing():
    data = _data(seed=1)
    module = _module(matched_loss=1e3, curve_every=2)  # every init crosses at step 0
    module._test = data.splits["test"]
    test = data.splits["test"]
    initial = relative_error(module.net.entries(test["index"]), test["target"]).detach()
    _train(module, data, 1)
    assert torch.allclose(module.matched_test_error, initial)
    assert module.matched_step.tolist() == [0, 0, 0]
    assert module.curves["step"] == [0.0]
    never = _module(matched_loss=1e-12)
    never._test = test
    _train(never, data, 3)
    assert never.matched_step.tolist() == [-1, -1, -1]
    assert math.isinf(never.analysis(data)["test_error_at_matched_loss"])


def test_analysis_reports_medians_of_the_per_init_values():
    data = _data(seed=2)
    module = _module()
    module._test = data.splits["test"]
    _train(module, data, 50)
    results = module.analysis(data)
    per_init = torch.tensor(results["per_init_test_error"])
    assert results["test_error"] == pytest.approx(per_init.median().item(), rel=1e-6)
    ranks = torch.tensor(results["per_init_effective_rank"])
    assert results["effective_rank"] == pytest.approx(ranks.median().item(), rel=1e-6)
    assert len(results["test_error_vs_step"]) == len(results["curve_steps"])
    assert results["curve_steps"][0] == 0.0


def test_claim_experiment_runs_through_the_runner(compose, tmp_path):
    from dlt_runner.run import Runtime, run

    cfg = compose(
        "experiment=tensor_factorization/rank1_completion",
        "trainer=cpu",
        "logger=none",
        "trainer.max_steps=300",
        "data.steps_per_call=100",
        "model.matched_loss=5.0",
        "model.net.depth=2",
        "threads=1",
    )
    record = run(cfg, Runtime(run_dir=tmp_path / "run"))
    assert record["status"] == "ok"
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    curves = written["curves"]
    assert curves["analysis/curve_steps"] == [0, 100, 200, 300]
    assert len(curves["analysis/effective_rank_vs_step"]) == 4
    metrics = written["metrics"]
    assert metrics["analysis/matched_loss_reached"] == 1.0
    assert 0 < metrics["analysis/test_error_at_matched_loss"] < 2
    assert metrics["test/rel_error"] == pytest.approx(metrics["analysis/test_error"], rel=1e-4)


def _run(depth: int, seed: int, test_error: float, rank: float, matched: float) -> Run:
    metrics = {
        "analysis/test_error": test_error,
        "analysis/effective_rank": rank,
        "analysis/test_error_at_matched_loss": matched,
        "analysis/train_mse": 1e-5,
        "analysis/matched_loss_reached": 1.0,
    }
    overrides = {"model.net.depth": str(depth), "seed": str(seed)}
    return Run("main", overrides, "ok", metrics, {}, Path("."))


def test_verdict_needs_every_seed_and_the_mean_ratio():
    good = [_run(1, s, 0.3, 2.0, 0.4) for s in range(3)] + [
        _run(3, s, 0.1, 1.2, 0.2) for s in range(3)
    ]
    assert verdict(good).holds
    one_seed_lost = good[:-1] + [_run(3, 2, 0.1, 1.2, 0.5)]
    result = verdict(one_seed_lost)
    assert not result.holds
    assert [check.holds for check in result.checks] == [True, True, False, True]
    small_gain = [_run(1, s, 0.3, 2.0, 0.4) for s in range(3)] + [
        _run(3, s, 0.25, 1.2, 0.2) for s in range(3)
    ]
    assert [check.holds for check in verdict(small_gain).checks] == [True, True, True, False]
    assert not verdict(good[:3]).holds, "no deep runs: nothing to compare"
