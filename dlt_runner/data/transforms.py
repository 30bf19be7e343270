"""Random input transforms applied to a whole minibatch on its device, every step.

Each transform is called as ``transform(x, generator)`` and draws all its randomness from
``generator``; a module passes ``self.step_generator()``
(:meth:`dlt_runner.core.module.RunnerModule.step_generator`), seeded by the run seed and the
optimiser step, so a resumed run augments exactly as the uninterrupted one. Every sample gets
its own draw, in one vectorised operation (no Python loop over the batch).

Configs name them through :data:`TRANSFORMS` (``make_transform("crop_flip", padding=4)``).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from dlt_runner.core.errors import ConfigError, choose


class Transform(Protocol):
    def __call__(self, x: Tensor, generator: torch.Generator) -> Any: ...


class Identity:
    """No augmentation (``none``): lets a config switch augmentation off."""

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return x


class PatchDrop:
    """Zero each patch of ``x`` of shape (B, P, d) independently with probability ``1 - keep``.

    The kept patches are not rescaled: a dropped patch reads as absent, not as noise.
    """

    def __init__(self, keep: float) -> None:
        if not 0 < float(keep) <= 1:
            raise ConfigError(f"patch_drop keep must be in (0, 1], got {keep!r}")
        self.keep = float(keep)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if x.dim() != 3:
            raise ValueError(
                f"patch_drop expects (batch, patches, dim), got shape {tuple(x.shape)}"
            )
        draws = torch.rand(x.shape[:2], generator=generator, device=x.device)
        return x * (draws < self.keep).unsqueeze(-1).to(x.dtype)


class PatchWindow:
    """Keep a random contiguous window of ``round(keep * P)`` patches of ``x`` (B, P, d).

    The patch-sequence analogue of a random crop: the window starts at a uniform position and
    wraps around the end (so every patch is kept with probability ``keep``); the rest is zeroed.
    At least one patch is kept.
    """

    def __init__(self, keep: float) -> None:
        if not 0 < float(keep) <= 1:
            raise ConfigError(f"patch_window keep must be in (0, 1], got {keep!r}")
        self.keep = float(keep)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if x.dim() != 3:
            raise ValueError(
                f"patch_window expects (batch, patches, dim), got shape {tuple(x.shape)}"
            )
        batch, patches = x.shape[:2]
        length = max(1, round(self.keep * patches))
        start = torch.randint(0, patches, (batch, 1), generator=generator, device=x.device)
        offset = (torch.arange(patches, device=x.device) - start) % patches
        return x * (offset < length).unsqueeze(-1).to(x.dtype)


class RandomCropFlip:
    """Pad by ``padding`` zeros, crop back to (H, W) at a random offset, flip left-right w.p. 1/2.

    The standard CIFAR augmentation (He et al. 2016, §4.2: "4 pixels are padded on each side,
    and a 32×32 crop is randomly sampled from the padded image or its horizontal flip"), on
    ``x`` of shape (B, C, H, W), with an offset and a flip drawn per sample.
    """

    def __init__(self, padding: int = 4, flip: bool = True) -> None:
        if int(padding) != padding or padding < 0:
            raise ConfigError(f"crop_flip padding must be an integer >= 0, got {padding!r}")
        self.padding = int(padding)
        self.flip = bool(flip)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"crop_flip expects (batch, C, H, W), got shape {tuple(x.shape)}")
        batch, _, height, width = x.shape
        pad, device = self.padding, x.device
        padded = F.pad(x, (pad, pad, pad, pad))
        top = torch.randint(0, 2 * pad + 1, (batch, 1), generator=generator, device=device)
        left = torch.randint(0, 2 * pad + 1, (batch, 1), generator=generator, device=device)
        rows = top + torch.arange(height, device=device)  # (B, H)
        cols = left + torch.arange(width, device=device)  # (B, W)
        if self.flip:
            flipped = torch.rand((batch, 1), generator=generator, device=device) < 0.5
            cols = torch.where(flipped, cols.flip(1), cols)
        samples = torch.arange(batch, device=device)[:, None, None]
        crops = padded[samples, :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
        return crops.permute(0, 3, 1, 2).contiguous()


class TwoViews:
    """Two independently augmented views of the same batch (SimCLR, Chen et al. 2020, §2.1).

    ``transform`` is a transform, or a name from :data:`TRANSFORMS` built with ``options``.
    """

    def __init__(self, transform: Transform | str, **options: Any) -> None:
        self.transform = (
            make_transform(transform, **options) if isinstance(transform, str) else transform
        )

    def __call__(self, x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.transform(x, generator), self.transform(x, generator)


TRANSFORMS: dict[str, type] = {
    "none": Identity,
    "patch_drop": PatchDrop,
    "patch_window": PatchWindow,
    "crop_flip": RandomCropFlip,
    "two_views": TwoViews,
}


def make_transform(name: str, **options: Any) -> Transform:
    """The transform a config names, e.g. ``make_transform("patch_drop", keep=0.5)``."""
    return choose("transform", name, TRANSFORMS)(**options)
