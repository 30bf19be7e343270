"""Offline stand-in for MNIST: scikit-learn's 8x8 digits as 1x8x8 images in [0, 1].

The paper's conv target is trained on MNIST (official ``main_cnn.py``); at CPU scale the
1,797 digits, pixel values divided by 16, take its place (reconstruction). The split is a
stratified ``train_test_split(test_size=0.33, random_state=split_seed)``: 1,203 training and
594 test images. There is no validation split: nothing is selected on held-out data, every
reported number is the final net's test accuracy.
"""

from __future__ import annotations

import torch

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import ConfigError


class DigitsImages(TensorDataModule):
    """``x`` (N, 1, 8, 8) = pixels / 16, ``y`` class index; splits ``train`` and ``test``.

    Args:
        test_size: fraction of the 1,797 images held out (stratified by class).
        split_seed: ``random_state`` of the split (fixed, so runs at other seeds share it).
        n_train: keep only the first n training images (``null``: all).
    """

    def __init__(
        self,
        test_size: float = 0.33,
        split_seed: int = 0,
        n_train: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 < float(test_size) < 1.0:
            raise ConfigError(f"data.test_size must be in (0, 1), got {test_size}")
        self.test_size = float(test_size)
        self.split_seed = int(split_seed)
        self.n_train = None if n_train is None else int(n_train)

    def build(self) -> dict[str, Batch]:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x_train, x_test, y_train, y_test = train_test_split(
            digits.data / 16.0,
            digits.target,
            test_size=self.test_size,
            random_state=self.split_seed,
            stratify=digits.target,
        )
        x_train, y_train = x_train[: self.n_train], y_train[: self.n_train]
        return {
            "train": {
                "x": torch.as_tensor(x_train).reshape(-1, 1, 8, 8),
                "y": torch.as_tensor(y_train, dtype=torch.long),
            },
            "test": {
                "x": torch.as_tensor(x_test).reshape(-1, 1, 8, 8),
                "y": torch.as_tensor(y_test, dtype=torch.long),
            },
        }
