"""sklearn's 8x8 digits as images on the [0, 1] scale, the offline stand-in for CIFAR-10 in the
adversarial-robustness experiment (reconstruction: the paper uses natural images).

Pixels (0..16) are divided by 16, so the L-infinity threat model eps = 0.1 is on the same
[0, 1] scale as images; no standardisation (the attack's box is [0, 1]). The split is
``train_test_split(test_size=0.33, random_state=split_seed, stratify=y)``: 1,203 training and
594 test images for ``split_seed = 0``.
"""

from __future__ import annotations

import torch

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import ConfigError


class DigitsImages(TensorDataModule):
    """Digits as ``x`` (N, 1, 8, 8) in [0, 1] and ``y`` (class index): ``train`` and ``test``.

    Args:
        test_fraction: share of the 1,797 images held out, stratified by class.
        split_seed: ``random_state`` of the split (fixed across run seeds, so seeds vary only
            the initialisation, the batches and the attacks' random starts).
        n_val: the first n of the training images become a ``val`` split (model selection,
            hyper-parameter search); the rest train.
        n_train: keep only the first n of the remaining training images (``null``: all).
    """

    def __init__(
        self,
        test_fraction: float = 0.33,
        split_seed: int = 0,
        n_val: int = 0,
        n_train: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 < float(test_fraction) < 1.0:
            raise ConfigError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
        self.test_fraction = float(test_fraction)
        self.split_seed = int(split_seed)
        self.n_val = int(n_val)
        self.n_train = None if n_train is None else int(n_train)
        if self.n_val < 0:
            raise ConfigError(f"data.n_val must be >= 0, got {n_val}")

    def build(self) -> dict[str, Batch]:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x_train, x_test, y_train, y_test = train_test_split(
            digits.images / 16.0,
            digits.target,
            test_size=self.test_fraction,
            random_state=self.split_seed,
            stratify=digits.target,
        )
        x_val, y_val = x_train[: self.n_val], y_train[: self.n_val]
        rest = slice(self.n_val, None if self.n_train is None else self.n_val + self.n_train)
        x_train, y_train = x_train[rest], y_train[rest]
        splits = (("train", x_train, y_train), ("val", x_val, y_val), ("test", x_test, y_test))
        return {
            name: {
                "x": torch.as_tensor(x, dtype=torch.float32).unsqueeze(1),
                "y": torch.as_tensor(y, dtype=torch.long),
            }
            for name, x, y in splits
            if len(x)
        }
