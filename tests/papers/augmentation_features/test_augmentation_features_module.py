"""The training module (patch drop through the transform), the runner wiring, the verdict."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.data.transforms import PatchDrop, PatchWindow
from dlt_runner.papers.augmentation_features.claim import verdict
from dlt_runner.papers.augmentation_features.module import PatchAugmentationModule
from dlt_runner.papers.augmentation_features.nets import PatchCNN
from dlt_runner.run import Runtime, run
from dlt_runner.sweeps.runs import Run

from helpers import train_full_batch


def _module(keeps=(1.0, 0.5), augmentation=PatchDrop, **kwargs) -> PatchAugmentationModule:
    torch.manual_seed(0)
    return PatchAugmentationModule(
        net=PatchCNN(dim=12, filters=3, n_classes=2),
        augmentation=functools.partial(augmentation),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        keeps=keeps,
        reference_keep=0.5,
        **kwargs,
    )


def test_copies_start_equal_and_only_augmented_copies_see_patch_drop():
    module = _module(keeps=(1.0, 0.75, 0.5))
    assert len(module.net) == 3
    first = module.net[0].weight
    assert all(torch.equal(net.weight, first) for net in module.net)
    assert module.net[0].weight is not module.net[1].weight, "each copy has its own filters"
    assert module.augmentations[0] is None
    x = torch.rand(500, 40, 4) + 0.5
    for keep, augment in zip(module.keeps[1:], module.augmentations[1:], strict=True):
        assert isinstance(augment, PatchDrop) and augment.keep == keep
        kept = (augment(x, torch.Generator().manual_seed(1)) != 0).all(-1)
        # 20,000 Bernoulli(keep) patches: standard error <= 0.0036, bound 0.02 (> 5 errors)
        assert float(kept.double().mean()) == pytest.approx(keep, abs=0.02)


def test_patch_window_plugs_in_as_the_augmentation():
    module = _module(keeps=(1.0, 0.5), augmentation=PatchWindow)
    out = module.augmentations[1](torch.ones(3, 8, 2), torch.Generator().manual_seed(0))
    assert torch.equal((out != 0).all(-1).sum(1), torch.full((3,), 4))


def test_keeps_must_hold_no_augmentation_and_the_reference():
    with pytest.raises(ConfigError, match="must contain 1.0"):
        _module(keeps=(0.75, 0.5))
    with pytest.raises(ConfigError, match="reference_keep"):
        _module(keeps=(1.0, 0.25))


def test_full_batch_training_lowers_every_copys_loss():
    module = _module()
    generator = torch.Generator().manual_seed(0)
    batch = {"x": torch.randn(64, 4, 12, generator=generator)}
    batch["y"] = (batch["x"][:, :, 0].sum(1) > 0).long()
    losses = train_full_batch(module, batch, steps=200)
    assert losses[-1] < 0.5 * losses[0]


def _claim_record(tmp_path: Path, compose, experiment: str, *extra: str) -> dict:
    cfg = compose(f"experiment={experiment}", "logger=none", "trainer=cpu", *extra)
    return run(cfg, Runtime(run_dir=tmp_path / "run"))


@pytest.mark.parametrize(
    "experiment",
    ["augmentation_features/multiview_cubic", "augmentation_features/multiview_linear"],
)
def test_experiments_run_through_the_runner_and_return_the_claims_curves(
    compose, tmp_path, experiment
):
    record = _claim_record(
        tmp_path,
        compose,
        experiment,
        "trainer.max_steps=40",
        "model.align_every=20",
        "model.log_every_n_steps=20",
        "data.steps_per_call=20",
        "data.n_test=200",
        "data.n_hard_only=200",
    )
    assert record["status"] == "ok" and record["timing"]["steps"] == 40
    metrics, curves = record["metrics"], record["curves"]
    assert curves["analysis/keeps"] == [1.0, 0.75, 0.5, 0.25]
    hard_only = curves["analysis/hard_only_acc_vs_keep"]
    assert len(hard_only) == 4 and all(0 <= a <= 1 for a in hard_only)
    assert metrics["analysis/hard_only_acc_no_aug"] == hard_only[0]
    assert metrics["analysis/aug_gain"] == pytest.approx(hard_only[2] - hard_only[0])
    assert curves["analysis/align_steps"] == [0.0, 20.0]
    for view in ("easy", "hard"):
        over_training = curves[f"analysis/align_{view}_over_training_keep50"]
        assert len(over_training) == 2 and all(-1 <= a <= 1 for a in over_training)
        assert metrics[f"train/align_{view}_keep50"] == pytest.approx(over_training[-1])
    assert {"train/acc_keep100", "train/acc_keep25"} <= set(metrics)


# --------------------------------------------------------------------------- verdict
def _runs(cubic: tuple[float, float], linear: tuple[float, float], align_hard=(0.2, 0.4)):
    runs = []
    for act, (no_aug, aug) in (("cubic", cubic), ("linear", linear)):
        metrics = {
            "analysis/hard_only_acc_no_aug": no_aug,
            "analysis/hard_only_acc_aug": aug,
            "analysis/aug_gain": aug - no_aug,
            "analysis/align_hard_no_aug": align_hard[0],
            "analysis/align_hard_aug": align_hard[1],
            "analysis/align_easy_no_aug": 0.9,
            "analysis/align_easy_aug": 0.7,
            "analysis/test_acc_no_aug": 1.0,
            "analysis/test_acc_aug": 0.99,
        }
        overrides = {"model.net.act": act, "seed": "0"}
        runs.append(Run("main", overrides, "ok", metrics, {}, Path(".")))
    return runs


def test_verdict_holds_and_fails_on_each_statement():
    assert verdict(_runs((0.55, 0.82), (0.70, 0.73))).holds
    small_gain = verdict(_runs((0.55, 0.70), (0.70, 0.70)))
    assert [c.holds for c in small_gain.checks] == [False, True, True]
    linear_too = verdict(_runs((0.55, 0.82), (0.60, 0.80)))
    assert [c.holds for c in linear_too.checks] == [True, False, True]
    no_feature_change = verdict(_runs((0.55, 0.82), (0.70, 0.73), align_hard=(0.4, 0.3)))
    assert [c.holds for c in no_feature_change.checks] == [True, True, False]
