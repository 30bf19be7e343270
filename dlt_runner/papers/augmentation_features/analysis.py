"""The paper's measurements as pure functions: accuracies, filter/view alignment, probes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn


@torch.no_grad()
def accuracy(net: nn.Module, x: Tensor, y: Tensor, batch_size: int | None = None) -> float:
    """Fraction of ``x`` that ``net`` classifies as ``y`` (in batches of ``batch_size``)."""
    step = len(x) if batch_size is None else int(batch_size)
    correct = sum(
        int((net(x[i : i + step]).argmax(-1) == y[i : i + step]).sum())
        for i in range(0, len(x), step)
    )
    return correct / max(1, len(x))


def view_alignment(weight: Tensor, features: Tensor) -> Tensor:
    """align(c, v) = max_r <w_{c,r}, v> / ||w_{c,r}||, shape (C, V).

    ``weight`` (C, m, d) are the filters of each class, ``features`` (V, d) unit view
    directions. 1 means some filter of class c points exactly along v.
    """
    filters = weight / weight.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.einsum("cmd,vd->cmv", filters, features.to(weight)).amax(dim=1)


def class_view_alignment(weight: Tensor, features: Tensor) -> tuple[float, float]:
    """(align_easy, align_hard): the minimum over classes c of align(c, view of class c).

    ``features`` holds the C easy views, then the C hard views (``data.view_features``).
    """
    n_classes = weight.shape[0]
    table = view_alignment(weight, features)
    classes = torch.arange(n_classes)
    easy = table[classes, classes].min()
    hard = table[classes, n_classes + classes].min()
    return float(easy), float(hard)


def augmentation_gain(hard_only_aug: float, hard_only_no_aug: float) -> float:
    """aug_gain = hard-only accuracy with augmentation minus without."""
    return hard_only_aug - hard_only_no_aug


# --------------------------------------------------------------------------- image probes
def flip_left_right(x: Tensor) -> Tensor:
    """Mirror images (B, C, H, W): a cue the crop+flip augmentation makes irrelevant."""
    return x.flip(-1)


def shift(x: Tensor, pixels: int = 4) -> Tensor:
    """Translate images right and down by ``pixels``, filling with zeros (crop's cue)."""
    shifted = torch.zeros_like(x)
    shifted[..., pixels:, pixels:] = x[..., :-pixels, :-pixels]
    return shifted


def occlude_centre(x: Tensor, size: int = 16) -> Tensor:
    """Zero a central ``size`` x ``size`` square: removes the object's central cue."""
    occluded = x.clone()
    top = (x.shape[-2] - size) // 2
    left = (x.shape[-1] - size) // 2
    occluded[..., top : top + size, left : left + size] = 0
    return occluded


def centre_only(x: Tensor, size: int = 16) -> Tensor:
    """Keep only a central ``size`` x ``size`` square: isolates the central cue."""
    return x - occlude_centre(x, size)


#: Feature-manipulation probes of the CIFAR-10 preset (reconstruction): name -> image map.
IMAGE_PROBES: dict[str, Callable[[Tensor], Tensor]] = {
    "clean": lambda x: x,
    "flipped": flip_left_right,
    "shifted": shift,
    "centre_occluded": occlude_centre,
    "centre_only": centre_only,
}


def probe_accuracies(
    net: nn.Module, x: Tensor, y: Tensor, probes: Sequence[str], batch_size: int = 500
) -> dict[str, float]:
    """Accuracy of ``net`` on the test images under each probe of :data:`IMAGE_PROBES`."""
    return {name: accuracy(net, IMAGE_PROBES[name](x), y, batch_size=batch_size) for name in probes}
