"""scikit-learn's 8×8 handwritten digits (1,797 images, shipped with the package): offline data.

Used by the kernel papers at CPU scale (02, 07, 14) in place of CIFAR/MNIST. The whole set
is a few hundred kilobytes, so it lives on the device as tensors (``TensorDataModule``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import ConfigError, unknown_choice

NORMALIZATIONS = ("none", "standardize", "center", "sphere")
SHAPES = ("flat", "image")


def normalize(x: Tensor, how: str, reference: Tensor | None = None) -> Tensor:
    """Normalise inputs; statistics come from ``reference`` (the training split) when given.

    - ``standardize``: per feature, zero mean and unit variance (constant pixels stay 0);
    - ``center``: per feature, zero mean;
    - ``sphere``: centre, then rescale every row to norm sqrt(d), so that ``x·x'/d`` is the
      correlation of the first-layer pre-activations (paper 02 §2);
    - ``none``: unchanged.
    """
    if how not in NORMALIZATIONS:
        raise ConfigError(unknown_choice("normalization", how, NORMALIZATIONS))
    if how == "none":
        return x
    reference = x if reference is None else reference
    mean = reference.mean(dim=0, keepdim=True)
    if how == "standardize":
        std = reference.std(dim=0, keepdim=True)
        return (x - mean) / torch.where(std > 0, std, torch.ones_like(std))
    centred = x - mean
    if how == "center":
        return centred
    norms = centred.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return centred * (x.shape[1] ** 0.5) / norms


def one_hot_targets(labels: Tensor, n_classes: int, offset: float) -> Tensor:
    """One-hot rows minus ``offset`` (0.1 makes them zero-mean over 10 classes)."""
    return torch.nn.functional.one_hot(labels, n_classes).to(torch.float64) - offset


class DigitsData(TensorDataModule):
    """Digits as tensors: ``x`` (inputs), ``y`` (class index), ``y_onehot`` (float targets).

    Args:
        splits: split name -> size, taken in this order from one random permutation of the
            1,797 images (seeded by ``split_seed``); the rest are unused. Names other than
            train/val/test (e.g. ``pretrain``) are available to the paper via ``tensors()``.
        classes: keep only these digits (relabelled 0..k-1); ``null`` keeps all ten.
        label_noise: fraction of training labels replaced by uniformly random classes.
        normalization: one of ``none, standardize, center, sphere`` (statistics from train).
        shape: ``flat`` (64 features) or ``image`` (1×8×8).
        onehot_offset: subtracted from the one-hot targets (paper 02/14: 0.1).
        split_seed: seeds the permutation and the label noise (default: ``seed``).
    """

    def __init__(
        self,
        splits: Mapping[str, int] | None = None,
        classes: Sequence[int] | None = None,
        label_noise: float = 0.0,
        normalization: str = "standardize",
        shape: str = "flat",
        onehot_offset: float = 0.0,
        split_seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.split_sizes = {
            name: int(size)
            for name, size in (splits or {"train": 1200, "val": 200, "test": 397}).items()
        }
        if normalization not in NORMALIZATIONS:
            raise ConfigError(unknown_choice("normalization", normalization, NORMALIZATIONS))
        if shape not in SHAPES:
            raise ConfigError(unknown_choice("shape", shape, SHAPES))
        if not 0.0 <= float(label_noise) <= 1.0:
            raise ConfigError(f"data.label_noise must be in [0, 1], got {label_noise}")
        self.classes = None if classes is None else [int(c) for c in classes]
        self.label_noise = float(label_noise)
        self.normalization = normalization
        self.shape = shape
        self.onehot_offset = float(onehot_offset)
        self.split_seed = self.seed if split_seed is None else int(split_seed)

    def build(self) -> dict[str, Batch]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.as_tensor(digits.data, dtype=torch.float64)
        y = torch.as_tensor(digits.target, dtype=torch.long)
        if self.classes is not None:
            keep = torch.isin(y, torch.tensor(self.classes))
            x, y = x[keep], y[keep]
            y = torch.tensor([self.classes.index(int(label)) for label in y])
        n_classes = len(self.classes) if self.classes is not None else 10
        total = sum(self.split_sizes.values())
        if total > len(x):
            raise ConfigError(f"data.splits ask for {total} images; only {len(x)} are available")
        generator = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(len(x), generator=generator)
        parts, start = {}, 0
        for name, size in self.split_sizes.items():
            parts[name] = order[start : start + size]
            start += size
        if self.label_noise > 0 and "train" in parts:
            y = self._noisy(y, parts["train"], n_classes, generator)
        reference = x[parts["train"]] if "train" in parts else x
        x = normalize(x, self.normalization, reference)
        if self.shape == "image":
            x = x.reshape(-1, 1, 8, 8)
        targets = one_hot_targets(y, n_classes, self.onehot_offset)
        return {
            name: {"x": x[index], "y": y[index], "y_onehot": targets[index]}
            for name, index in parts.items()
            if len(index)
        }

    def _noisy(
        self, y: Tensor, train: Tensor, n_classes: int, generator: torch.Generator
    ) -> Tensor:
        y = y.clone()
        flip = train[torch.rand(len(train), generator=generator) < self.label_noise]
        y[flip] = torch.randint(0, n_classes, (len(flip),), generator=generator)
        return y


def stratified_images(test_size: float = 0.33, split_seed: int = 0):
    """Digits as (N, 1, 8, 8) pixels / 16 in [0, 1], split by sklearn's stratified
    ``train_test_split(test_size, random_state=split_seed)``: 1,203 / 594 images at 0.33.

    Returns numpy arrays ``x_train, x_test, y_train, y_test``. The split is the one the
    image papers' reference code uses; ``split_seed`` is fixed across run seeds, so seeds vary
    only the initialisation and the batches.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < float(test_size) < 1.0:
        raise ConfigError(f"data.test_size must be in (0, 1), got {test_size}")
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.images[:, None] / 16.0,
        digits.target,
        test_size=float(test_size),
        random_state=int(split_seed),
        stratify=digits.target,
    )
    return x_train, x_test, y_train, y_test


class DigitsImages(TensorDataModule):
    """Digits as images ``x`` (N, 1, 8, 8) in [0, 1] and ``y`` (class index), stratified split.

    No standardisation: an L-infinity attack's box is [0, 1] and pixel scale is the unit of its
    radius. Splits ``train`` and ``test``, and ``val`` when ``n_val > 0``.

    Args:
        test_size: share of the 1,797 images held out, stratified by class.
        split_seed: ``random_state`` of the split (fixed across run seeds).
        n_val: the first n training images become a ``val`` split (model selection, search).
        n_train: keep only the first n of the remaining training images (``null``: all).
    """

    def __init__(
        self,
        test_size: float = 0.33,
        split_seed: int = 0,
        n_val: int = 0,
        n_train: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.test_size = float(test_size)
        self.split_seed = int(split_seed)
        if int(n_val) < 0:
            raise ConfigError(f"data.n_val must be >= 0, got {n_val}")
        self.n_val = int(n_val)
        self.n_train = None if n_train is None else int(n_train)

    def build(self) -> dict[str, Batch]:
        x_train, x_test, y_train, y_test = stratified_images(self.test_size, self.split_seed)
        rest = slice(self.n_val, None if self.n_train is None else self.n_val + self.n_train)
        splits = {
            "train": (x_train[rest], y_train[rest]),
            "val": (x_train[: self.n_val], y_train[: self.n_val]),
            "test": (x_test, y_test),
        }
        return {
            name: {
                "x": torch.as_tensor(x, dtype=torch.float32),
                "y": torch.as_tensor(y, dtype=torch.long),
            }
            for name, (x, y) in splits.items()
            if len(x)
        }
