"""A related task and a target task from sklearn's 8x8 digits (reconstruction).

The paper pre-trains (or leaves random) the fixed layers and trains the intrinsic block on the
task itself; offline, digits 0-4 are the related task that pre-trains phi_in and digits 5-9
(relabelled 0-4) the target task. Images are pixels / 16, shape 1x8x8. One stratified
``train_test_split(test_size=0.33, random_state=split_seed)`` of all 1,797 images is cut by
class, so both tasks share it:

- ``train`` / ``test``: target task (digits 5-9 -> labels 0-4);
- ``pretrain`` / ``pretrain_test``: related task (digits 0-4), read by the module's
  pre-training through ``tensors()``.

Paper scale, :class:`RelatedVision` cuts MNIST / CIFAR-10 the same way: classes 0-4 are the
related task, 5-9 the target task (reconstruction: the paper's related datasets are not named
in the text we have).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import ConfigError
from dlt_runner.data.digits import stratified_images
from dlt_runner.data.vision import VisionData


class RelatedDigits(TensorDataModule):
    """Digits split into a related (pre-training) task and a target task.

    Args:
        target_classes: digits of the target task, relabelled 0..len-1 in this order.
        related_classes: digits of the related task, relabelled likewise.
        test_size: held-out fraction of the stratified split.
        split_seed: ``random_state`` of the split (fixed, so every run seed shares it).
    """

    def __init__(
        self,
        target_classes: Sequence[int] = (5, 6, 7, 8, 9),
        related_classes: Sequence[int] = (0, 1, 2, 3, 4),
        test_size: float = 0.33,
        split_seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.target_classes = _classes("target_classes", target_classes)
        self.related_classes = _classes("related_classes", related_classes)
        if not 0.0 < float(test_size) < 1.0:
            raise ConfigError(f"data.test_size must be in (0, 1), got {test_size}")
        self.test_size = float(test_size)
        self.split_seed = int(split_seed)

    def build(self) -> dict[str, Batch]:
        x_train, x_test, y_train, y_test = stratified_images(self.test_size, self.split_seed)
        target, related = self.target_classes, self.related_classes
        return {
            "train": task_subset(x_train, y_train, target),
            "test": task_subset(x_test, y_test, target),
            "pretrain": task_subset(x_train, y_train, related),
            "pretrain_test": task_subset(x_test, y_test, related),
        }


class RelatedVision(VisionData):
    """MNIST / CIFAR-10 cut into a related task and a target task by class.

    ``train`` / ``val`` / ``test`` keep the target classes (relabelled 0..), ``pretrain`` /
    ``pretrain_test`` the related classes of ``train`` / ``test``. Size options
    (``n_train``, ``n_val``, ``n_test``) apply before the cut.
    """

    def __init__(
        self,
        target_classes: Sequence[int] = (5, 6, 7, 8, 9),
        related_classes: Sequence[int] = (0, 1, 2, 3, 4),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.target_classes = _classes("target_classes", target_classes)
        self.related_classes = _classes("related_classes", related_classes)

    def build(self) -> dict[str, Batch]:
        full = super().build()
        splits = {
            name: task_subset(full[name]["x"], full[name]["y"], self.target_classes)
            for name in ("train", "val", "test")
            if name in full
        }
        splits["pretrain"] = task_subset(
            full["train"]["x"], full["train"]["y"], self.related_classes
        )
        if "test" in full:
            splits["pretrain_test"] = task_subset(
                full["test"]["x"], full["test"]["y"], self.related_classes
            )
        return {name: split for name, split in splits.items() if len(split["y"])}


def _classes(name: str, classes: Sequence[int]) -> list[int]:
    classes = [int(c) for c in classes]
    if not classes or not set(classes) <= set(range(10)) or len(set(classes)) < len(classes):
        raise ConfigError(f"data.{name} must list distinct classes 0-9, got {classes}")
    return classes


def task_subset(x, y, classes: Sequence[int]) -> Batch:
    """The images of ``classes`` with labels relabelled 0..len(classes)-1 in that order."""
    labels = torch.as_tensor(y, dtype=torch.long)
    keep = torch.isin(labels, torch.tensor(list(classes)))
    relabel = torch.full((10,), -1, dtype=torch.long)
    relabel[torch.tensor(list(classes))] = torch.arange(len(classes))
    return {"x": torch.as_tensor(x)[keep], "y": relabel[labels[keep]]}
