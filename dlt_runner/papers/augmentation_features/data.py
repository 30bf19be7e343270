"""The multi-view data model (Allen-Zhu & Li 2020, as used by the paper's §3): patch images.

An image is P patches in R^d. Every patch starts as Gaussian noise; class c has an *easy*
view v_c (strong) and a *hard* view u_c (weak), orthonormal directions. The easy view is added
at one random patch and the hard view at another, distinct one. A "hard-only" image omits the
easy view: a model that learned only the easy view is at chance on it. The strengths, noise
level and sizes of the CPU experiment are our reconstruction.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import ConfigError, positive_int


def view_features(dim: int, n_classes: int, generator: torch.Generator) -> Tensor:
    """Orthonormal feature directions, shape (2C, d): rows 0..C-1 easy views, C..2C-1 hard.

    The Q factor of the QR decomposition of a d x 2C standard Gaussian matrix.
    """
    if 2 * n_classes > dim:
        raise ConfigError(f"data.dim ({dim}) must be >= 2 x data.n_classes ({2 * n_classes})")
    gaussian = torch.randn(dim, 2 * n_classes, generator=generator, dtype=torch.float64)
    q, _ = torch.linalg.qr(gaussian)
    return q.T.contiguous()


def multiview_images(
    n: int,
    features: Tensor,
    patches: int,
    easy_strength: float,
    hard_strength: float,
    noise_std: float,
    generator: torch.Generator,
    easy_fraction: float = 1.0,
) -> Batch:
    """``n`` images with labels uniform over the C classes of ``features`` (shape (2C, d)).

    Returns ``x`` (n, P, d), ``y`` (n,), ``easy_patch`` and ``hard_patch`` (n,): where the
    views were added; ``easy_patch`` is -1 for an image without the easy view. Each image
    carries the easy view with probability ``easy_fraction`` (1: every image, 0: hard-only).
    """
    if patches < 2:
        raise ConfigError(f"data.patches must be >= 2 (one per view), got {patches}")
    n_classes, dim = features.shape[0] // 2, features.shape[1]
    y = torch.randint(0, n_classes, (n,), generator=generator)
    x = noise_std * torch.randn(n, patches, dim, generator=generator, dtype=torch.float64)
    easy_patch = torch.randint(0, patches, (n,), generator=generator)
    # A uniform distinct second position: shift the first by 1..P-1 (cyclically).
    hard_patch = (easy_patch + torch.randint(1, patches, (n,), generator=generator)) % patches
    has_easy = torch.rand(n, generator=generator, dtype=torch.float64) < easy_fraction
    rows = torch.arange(n)
    x[rows, easy_patch] += easy_strength * has_easy[:, None] * features[y]
    x[rows, hard_patch] += hard_strength * features[n_classes + y]
    easy_patch = torch.where(has_easy, easy_patch, torch.full_like(easy_patch, -1))
    return {"x": x, "y": y, "easy_patch": easy_patch, "hard_patch": hard_patch}


class MultiViewData(TensorDataModule):
    """Splits ``train``, ``test`` (same law) and ``hard_only`` (no easy view), full-batch.

    The features are drawn from a generator seeded ``seed`` and the images, in the order train,
    test, hard_only, from one seeded ``seed + 1``, so every seed is a fresh data model.

    Args:
        dim: d, the patch dimension.
        patches: P, patches per image.
        n_classes: C, classes (labels uniform).
        easy_strength, hard_strength: norms of the easy and hard views in their patches.
        noise_std: standard deviation of every patch's Gaussian noise, per coordinate.
        easy_fraction: fraction of training (and test) images that carry the easy view; the
            rest are hard-only ("single-view" data in Allen-Zhu & Li).
        n_train, n_test, n_hard_only: images per split.
        **kwargs: ``TensorDataModule`` options (batch size, steps per call, seed, dtype).
    """

    def __init__(
        self,
        dim: int = 100,
        patches: int = 8,
        n_classes: int = 2,
        easy_strength: float = 1.0,
        hard_strength: float = 0.6,
        noise_std: float = 0.15,
        easy_fraction: float = 1.0,
        n_train: int = 300,
        n_test: int = 2000,
        n_hard_only: int = 2000,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.dim = positive_int("data.dim", dim)
        self.patches = positive_int("data.patches", patches)
        self.n_classes = positive_int("data.n_classes", n_classes)
        if not 0 <= float(easy_fraction) <= 1:
            raise ConfigError(f"data.easy_fraction must be in [0, 1], got {easy_fraction!r}")
        self.view = {
            "patches": self.patches,
            "easy_strength": float(easy_strength),
            "hard_strength": float(hard_strength),
            "noise_std": float(noise_std),
        }
        self.easy_fraction = float(easy_fraction)
        self.sizes = {
            "train": positive_int("data.n_train", n_train),
            "test": int(n_test),
            "hard_only": int(n_hard_only),
        }
        self.features: Tensor | None = None

    def build(self) -> dict[str, Batch]:
        feature_generator = torch.Generator().manual_seed(self.seed)
        features = view_features(self.dim, self.n_classes, feature_generator)
        self.features = features.to(self.dtype)
        generator = torch.Generator().manual_seed(self.seed + 1)
        splits = {}
        for split, n in self.sizes.items():
            # debug=fast builds a few images of each split: the run checks wiring, not sizes.
            n = min(n, 64) if self.smoke else n
            fraction = 0.0 if split == "hard_only" else self.easy_fraction
            if n > 0:
                splits[split] = multiview_images(
                    n, features, generator=generator, easy_fraction=fraction, **self.view
                )
        return splits

    def feature_directions(self) -> Tensor:
        """The (2C, d) view directions (easy rows first), built with the data."""
        self.prepare()
        assert self.features is not None
        return self.features
