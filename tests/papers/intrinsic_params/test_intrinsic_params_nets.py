"""IntrinsicNet's split of parameters, shapes, and the related/target data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.data import vision_files
from dlt_runner.papers.intrinsic_params.analysis import parameter_counts
from dlt_runner.papers.intrinsic_params.data import RelatedDigits, RelatedVision
from dlt_runner.papers.intrinsic_params.nets import IntrinsicNet, PooledConvFeatures

PHI_IN_PARAMS = (1 * 9 + 1) * 64 + (64 * 9 + 1) * 64  # two 3x3 convs: 37,568


def _net(k: int, trainable=("phi_f", "output")) -> IntrinsicNet:
    return IntrinsicNet(PooledConvFeatures(), k=k, hidden=256, n_classes=5, trainable=trainable)


@pytest.mark.parametrize(
    ("k", "trainable", "total"), [(2, 524, 40145), (4, 1038, 41171), (8, 2066, 43223)]
)
def test_intrinsic_split_counts(k, trainable, total):
    # phi_f = 256 k + k, output affine = 10; total adds phi_in, phi_out = (k + 1) 256 + 257 * 5.
    assert total == PHI_IN_PARAMS + 257 * k + (k + 1) * 256 + 256 * 5 + 5 + 10
    counts = parameter_counts(_net(k))
    assert counts["n_trainable"] == trainable
    assert counts["n_total"] == total
    assert counts["trainable_fraction"] == pytest.approx(trainable / total)
    full = parameter_counts(_net(k, ("phi_in", "phi_f", "phi_out", "output")))
    assert full["n_trainable"] == full["n_total"] == total


def test_shapes_and_composition():
    net = _net(4)
    x = torch.randn(7, 1, 8, 8)
    assert net.phi_in.n_features == 256
    assert net.features(x).shape == (7, 256)
    assert net.phi_f(net.features(x)).shape == (7, 4)
    logits = net(x)
    assert logits.shape == (7, 5)
    # The output affine map is per class: scale * phi_out(phi_f(phi_in(x))) + shift.
    with torch.no_grad():
        net.output.scale.copy_(torch.arange(1.0, 6.0))
        net.output.shift.copy_(torch.full((5,), 0.5))
        expected = net.phi_out(net.phi_f(net.phi_in(x))) * torch.arange(1.0, 6.0) + 0.5
        assert torch.allclose(net(x), expected)
    # No ReLU right after the bottleneck: phi_out starts with its Linear.
    assert isinstance(net.phi_out[0], torch.nn.Linear)


def test_trainable_flag_sets_requires_grad_and_rejects_unknown_names():
    net = _net(2, ("phi_f",))
    grads = {name: p.requires_grad for name, p in net.named_parameters()}
    assert all(grads[name] == name.startswith("phi_f.") for name in grads)
    with pytest.raises(ConfigError, match="phi_in, phi_f, phi_out, output"):
        _net(2, ("phi_g",))
    with pytest.raises(ConfigError, match="some of"):
        _net(2, ())
    with pytest.raises(ConfigError, match="multiple of pool"):
        PooledConvFeatures(image_size=10, pool=4)


def test_related_digits_splits():
    data = RelatedDigits()
    data.prepare()
    sizes = {name: len(split["y"]) for name, split in data.splits.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == 296  # digits 5-9 in the stratified 33 % test split
    for split in data.splits.values():
        assert split["x"].shape[1:] == (1, 8, 8)
        assert set(split["y"].tolist()) == {0, 1, 2, 3, 4}
        assert float(split["x"].min()) >= 0.0 and float(split["x"].max()) <= 1.0
    # The target task's label 0 is digit 5: its images are not the related task's.
    from sklearn.datasets import load_digits

    digits = load_digits()
    fives = torch.as_tensor(digits.data[digits.target == 5] / 16.0, dtype=torch.float32)
    train_x = data.splits["train"]["x"][data.splits["train"]["y"] == 0].flatten(1)
    assert all(bool((fives == row).all(dim=1).any()) for row in train_x[:10])
    with pytest.raises(ConfigError, match="distinct classes"):
        RelatedDigits(target_classes=[5, 5])


def test_related_vision_cuts_mnist_files_by_class(tmp_path):
    rng = np.random.default_rng(0)
    for train, n in ((True, 60), (False, 30)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        vision_files.write_mnist(tmp_path, images, labels, train=train)
    data = RelatedVision(name="mnist", root=str(tmp_path), n_val=10)
    data.prepare()
    assert set(data.splits) == {"train", "val", "test", "pretrain", "pretrain_test"}
    assert len(data.splits["test"]["y"]) == len(data.splits["pretrain_test"]["y"]) == 15
    assert len(data.splits["train"]["y"]) + len(data.splits["val"]["y"]) == 30
    # The 50 training images left after val are cut into the target and the related task.
    assert len(data.splits["train"]["y"]) + len(data.splits["pretrain"]["y"]) == 50
    for split in data.splits.values():
        assert split["x"].shape[1:] == (1, 28, 28)
        assert int(split["y"].min()) >= 0 and int(split["y"].max()) <= 4
