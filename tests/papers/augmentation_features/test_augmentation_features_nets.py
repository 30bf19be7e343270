"""PatchCNN: shapes, weight sharing over patches, closed forms; the view alignment; probes."""

from __future__ import annotations

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.augmentation_features.analysis import (
    IMAGE_PROBES,
    accuracy,
    class_view_alignment,
    view_alignment,
)
from dlt_runner.papers.augmentation_features.nets import PatchCNN, SmoothedReLU


def _x(batch: int = 5, patches: int = 6, dim: int = 10) -> torch.Tensor:
    return torch.randn(batch, patches, dim, generator=torch.Generator().manual_seed(0))


def test_shapes_and_parameters():
    torch.manual_seed(0)
    net = PatchCNN(dim=10, filters=4, n_classes=3, act="cubic", init_std=0.03)
    assert net(_x()).shape == (5, 3)
    assert [name for name, _ in net.named_parameters()] == ["weight"]
    assert net.weight.shape == (3, 4, 10)
    # N(0, 0.03^2) init: 120 draws, the sample std is within ~20% with overwhelming probability
    assert float(net.weight.detach().std()) == pytest.approx(0.03, rel=0.2)
    with pytest.raises(ConfigError, match="cubic, linear, smoothed_relu"):
        PatchCNN(act="quadratic")


@pytest.mark.parametrize("act", ["cubic", "linear", "smoothed_relu"])
def test_one_filter_bank_shared_over_patches(act):
    torch.manual_seed(1)
    net = PatchCNN(dim=10, filters=4, n_classes=2, act=act, init_std=1.0).double()
    x = _x().double()
    # Sum pooling with shared filters: the logits are the sum of every patch seen alone, and
    # permuting the patches changes nothing.
    alone = sum(net(x[:, p : p + 1]) for p in range(x.shape[1]))
    assert torch.allclose(net(x), alone, atol=1e-10)
    assert torch.allclose(net(x[:, torch.randperm(6)]), net(x), atol=1e-10)


def test_closed_forms_of_the_cubic_and_linear_models():
    torch.manual_seed(2)
    x = _x().double()
    cubic = PatchCNN(dim=10, filters=4, n_classes=2, act="cubic", init_std=1.0).double()
    w = cubic.weight.detach()
    expected = torch.stack(
        [sum((x[:, p] @ w[c, r]) ** 3 for r in range(4) for p in range(6)) for c in range(2)],
        dim=1,
    )
    assert torch.allclose(cubic(x), expected, atol=1e-10)
    linear = PatchCNN(dim=10, filters=4, n_classes=2, act="linear").double()
    # identity activation: F_c(x) = <sum_r w_{c,r}, sum_p x_p>
    expected = x.sum(1) @ linear.weight.detach().sum(1).T
    assert torch.allclose(linear(x), expected, atol=1e-10)


def test_smoothed_relu_pieces():
    act = SmoothedReLU(rho=0.5)
    z = torch.tensor([-1.0, 0.0, 0.25, 0.5, 2.0], dtype=torch.float64)
    expected = torch.tensor([0.0, 0.0, 0.25**3 / 0.75, 0.5 / 3, 2.0 - 1 / 3], dtype=torch.float64)
    assert torch.allclose(act(z), expected, atol=1e-12)


def test_view_alignment_is_the_best_filters_cosine():
    features = torch.eye(4, 6, dtype=torch.float64)  # 2 classes: easy e0, e1; hard e2, e3
    weight = torch.zeros(2, 3, 6, dtype=torch.float64)
    weight[0, 0, 0] = 5.0  # class 0: one filter exactly along its easy view
    weight[0, 1, 2], weight[0, 1, 3] = 1.0, 1.0  # ... one at 45 degrees to its hard view
    weight[0, 2, 5] = 1.0
    weight[1, :, 1] = -1.0  # class 1: anti-aligned with its easy view
    weight[1, 2, 3] = 3.0
    weight[1, 2, 1] = 4.0  # cos with e1 = 4/5, with e3 = 3/5
    table = view_alignment(weight, features)
    assert table.shape == (2, 4)
    assert table[0, 0] == pytest.approx(1.0) and table[0, 2] == pytest.approx(2**-0.5)
    assert table[1, 1] == pytest.approx(0.8) and table[1, 3] == pytest.approx(0.6)
    easy, hard = class_view_alignment(weight, features)
    assert easy == pytest.approx(0.8) and hard == pytest.approx(0.6)  # minimum over classes


def test_accuracy_in_batches_and_image_probes():
    net = torch.nn.Linear(3, 2)
    x = torch.randn(7, 3)
    y = net(x).argmax(-1)
    y[0] = 1 - y[0]
    assert accuracy(net, x, y) == accuracy(net, x, y, batch_size=2) == pytest.approx(6 / 7)
    images = torch.ones(2, 3, 32, 32)
    assert torch.equal(IMAGE_PROBES["flipped"](images.cumsum(-1)), images.cumsum(-1).flip(-1))
    occluded, centre = IMAGE_PROBES["centre_occluded"](images), IMAGE_PROBES["centre_only"](images)
    assert torch.equal(occluded + centre, images)
    assert float(centre.sum()) == 2 * 3 * 16 * 16
    shifted = IMAGE_PROBES["shifted"](images)
    assert float(shifted[..., :4, :].abs().sum()) == 0 and float(shifted[..., 4:, 4:].min()) == 1
