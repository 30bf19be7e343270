"""Image datasets (CIFAR-10/100, MNIST) in memory, for paper-scale presets.

The files are read in their own formats from torchvision's folder layout under
``paths.data_dir`` (:mod:`dlt_runner.data.vision_files`), so torchvision is needed only to
download them (``data.download=true``, the ``vision`` extra, a machine with internet access).
Absent data fails before training with a message naming the overrides that fix it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import ConfigError, DatasetUnavailable, unknown_choice
from dlt_runner.data import vision_files
from dlt_runner.data.digits import NORMALIZATIONS, normalize, one_hot_targets

DATASETS = {"cifar10": ("CIFAR10", 10), "cifar100": ("CIFAR100", 100), "mnist": ("MNIST", 10)}


def _download(name: str, root: Path) -> None:
    """Fetch the files with torchvision (the only use of torchvision here)."""
    try:
        import torchvision
    except ImportError:
        raise DatasetUnavailable(
            f"data.download=true needs torchvision to fetch {name}: pip install -e '.[vision]', "
            f"or put the files under paths.data_dir={root}"
        ) from None
    cls = getattr(torchvision.datasets, DATASETS[name][0])
    for train in (True, False):
        try:
            cls(root=str(root), train=train, download=True)
        except (RuntimeError, OSError) as error:  # offline: URLError is an OSError
            raise DatasetUnavailable(
                f"could not download {name} into {root} ({error}); on an offline machine put "
                f"the files there or point paths.data_dir=/path/to/datasets at a copy"
            ) from None


def _check_present(name: str, root: Path) -> None:
    missing = [
        path for train in (True, False) for path in vision_files.missing_files(name, root, train)
    ]
    if missing:
        raise DatasetUnavailable(
            f"{name} is not under {root} (missing {missing[0]}). This machine may be offline: "
            f"put the dataset there (torchvision's layout), point "
            f"paths.data_dir=/path/to/datasets at a copy, or set data.download=true on a "
            f"machine with internet access."
        )


class VisionData(TensorDataModule):
    """An image dataset held as tensors: ``x`` (N, C, H, W) or flat, ``y``, ``y_onehot``.

    Args:
        name: ``cifar10``, ``cifar100`` or ``mnist``.
        root: where the files are (``${paths.data_dir}``).
        n_train, n_val, n_test: sizes; val is carved from the training set (after a seeded
            permutation), test from the official test set; ``null`` takes all.
        normalization: as for digits (statistics from the training split).
        flatten: flatten images to vectors (for fully-connected nets).
    """

    def __init__(
        self,
        name: str = "cifar10",
        root: str = "data",
        download: bool = False,
        n_train: int | None = None,
        n_val: int = 0,
        n_test: int | None = None,
        normalization: str = "standardize",
        flatten: bool = False,
        onehot_offset: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if name not in DATASETS:
            raise ConfigError(unknown_choice("dataset", name, DATASETS))
        if normalization not in NORMALIZATIONS:
            raise ConfigError(unknown_choice("normalization", normalization, NORMALIZATIONS))
        self.name, self.root, self.download = name, Path(root), bool(download)
        self.n_train, self.n_val, self.n_test = n_train, int(n_val), n_test
        self.normalization, self.flatten = normalization, bool(flatten)
        self.onehot_offset = float(onehot_offset)

    def prepare_data(self) -> None:
        # Fails fast (before the trainer starts) when the files are absent.
        if self.download and any(
            vision_files.missing_files(self.name, self.root, train) for train in (True, False)
        ):
            _download(self.name, self.root)
        _check_present(self.name, self.root)

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = vision_files.read(self.name, self.root, train)
        x = torch.from_numpy(images.copy()).to(torch.float32) / 255.0
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        return x, torch.from_numpy(labels)

    def build(self) -> dict[str, Batch]:
        x_train, y_train = self._load(train=True)
        x_test, y_test = self._load(train=False)
        order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(self.seed))
        val_index = order[: self.n_val]
        train_index = order[self.n_val :][: self.n_train]
        test_index = torch.arange(len(x_test))[: self.n_test]
        shape = x_train.shape[1:]
        flat_train = x_train[train_index].reshape(len(train_index), -1)

        def prepare(x: torch.Tensor) -> torch.Tensor:
            flat = normalize(x.reshape(len(x), -1), self.normalization, flat_train)
            return flat if self.flatten else flat.reshape(len(x), *shape)

        n_classes = DATASETS[self.name][1]
        splits = {
            "train": (x_train[train_index], y_train[train_index]),
            "val": (x_train[val_index], y_train[val_index]),
            "test": (x_test[test_index], y_test[test_index]),
        }
        return {
            split: {
                "x": prepare(x),
                "y": y,
                "y_onehot": one_hot_targets(y, n_classes, self.onehot_offset),
            }
            for split, (x, y) in splits.items()
            if len(x)
        }
