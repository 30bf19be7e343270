"""Training with and without augmentation, and the paper's measurements after fit.

``PatchAugmentationModule`` trains one copy of a ``PatchCNN`` per augmentation strength on the
same full batch (each copy starts from the same initial filters, so the copies differ only by
the augmentation): copy k sees ``augmentation(keep=keeps[k])`` of the training images, redrawn
every step. ``keep = 1`` is training without augmentation. ``ImageAugmentationModule`` is the
CIFAR-10 counterpart: one image classifier, with or without an on-device augmentation, and
feature-manipulation probes of the test set.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, choose, positive_int
from dlt_runner.core.module import RunnerModule
from dlt_runner.data.transforms import Transform
from dlt_runner.papers.augmentation_features.analysis import (
    IMAGE_PROBES,
    accuracy,
    augmentation_gain,
    class_view_alignment,
    probe_accuracies,
)
from dlt_runner.papers.augmentation_features.nets import PatchCNN


def keep_label(keep: float) -> str:
    """Metric suffix of an augmentation strength: keep 0.5 -> ``keep50``."""
    return f"keep{round(100 * keep)}"


class PatchAugmentationModule(RunnerModule):
    """Cross-entropy of every copy (summed, so each gets its own gradient); views after fit.

    Logged while training: ``train/loss`` (sum over copies), ``train/acc_keep<k>`` (on the
    augmented batch) and ``train/align_easy_keep<k>``, ``train/align_hard_keep<k>`` (min over
    classes, recorded every ``align_every`` steps); evaluation: ``loss`` and ``acc_keep<k>``.
    ``analysis``: per copy (curves over ``keeps``) ``train_acc``, ``test_acc``,
    ``hard_only_acc``, ``align_easy``, ``align_hard``; the scalars ``*_no_aug`` (keep 1) and
    ``*_aug`` (keep ``reference_keep``), ``aug_gain`` = hard_only_acc_aug - hard_only_acc_no_aug;
    and the alignment of every copy with each view over training (curves
    ``align_easy_over_training_keep<k>``, x-axis ``align_steps``).

    Args:
        net: a ``PatchCNN``; it is copied once per entry of ``keeps``.
        augmentation: a partial transform called as ``augmentation(keep=k)`` (e.g.
            ``dlt_runner.data.transforms.PatchDrop``); copies with keep 1 are not augmented.
        keeps: the augmentation strengths, fractions of patches kept; must contain 1.
        reference_keep: the strength the ``*_aug`` scalars and ``aug_gain`` report.
        align_every: optimiser steps between alignment records.
        **kwargs: the base module's options (``optimizer``, ``log_every_n_steps``, ...).
    """

    def __init__(
        self,
        net: PatchCNN,
        augmentation: Callable[..., Transform],
        keeps: Sequence[float] = (1.0, 0.75, 0.5, 0.25),
        reference_keep: float = 0.5,
        align_every: int = 100,
        **kwargs: Any,
    ) -> None:
        self.keeps = [float(k) for k in keeps]
        if 1.0 not in self.keeps or float(reference_keep) not in self.keeps:
            raise ConfigError(
                f"model.keeps {self.keeps} must contain 1.0 (no augmentation) and "
                f"model.reference_keep ({reference_keep})"
            )
        super().__init__(net=nn.ModuleList(copy.deepcopy(net) for _ in self.keeps), **kwargs)
        self.augmentations = [None if k == 1.0 else augmentation(keep=k) for k in self.keeps]
        self.reference_keep = float(reference_keep)
        self.align_every = positive_int("model.align_every", align_every)
        self.align_steps: list[int] = []
        self.align_history: dict[str, list[float]] = {}
        self._features: Tensor | None = None

    # ----------------------------------------------------------------- objective
    def features(self) -> Tensor:
        """The data's view directions (easy first), on this module's device."""
        if self._features is None:
            self._features = self.trainer.datamodule.feature_directions().to(self.device)
        return self._features

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        # Only training steps under a Trainer record (the view directions live in its
        # datamodule); a gradient-free call, e.g. a shape check, must not.
        due = self.global_step % self.align_every == 0 or not self.align_steps
        fitting = self._trainer is not None and torch.is_grad_enabled()
        if fitting and due and self.align_steps[-1:] != [self.global_step]:
            self._record_alignment()
        generator = self.step_generator()
        total, extras = 0.0, {}
        for keep, net, augment in zip(self.keeps, self.net, self.augmentations, strict=True):
            x = batch["x"] if augment is None else augment(batch["x"], generator)
            logits = net(x)
            total = total + F.cross_entropy(logits, batch["y"])
            label = keep_label(keep)
            extras[f"acc_{label}"] = (logits.argmax(-1) == batch["y"]).float().mean()
            for view in ("easy", "hard"):
                history = self.align_history.get(f"{view}_{label}")
                if history:
                    extras[f"align_{view}_{label}"] = torch.tensor(history[-1])
        return total, extras

    @torch.no_grad()
    def _record_alignment(self) -> None:
        values = [class_view_alignment(net.weight, self.features()) for net in self.net]
        self.align_steps.append(int(self.global_step))
        for keep, (easy, hard) in zip(self.keeps, values, strict=True):
            self.align_history.setdefault(f"easy_{keep_label(keep)}", []).append(easy)
            self.align_history.setdefault(f"hard_{keep_label(keep)}", []).append(hard)

    def evaluate(self, batch: Batch, split: str) -> Mapping[str, Tensor]:
        results, losses = {}, []
        for keep, net in zip(self.keeps, self.net, strict=True):
            logits = net(batch["x"])
            losses.append(F.cross_entropy(logits, batch["y"]))
            correct = (logits.argmax(-1) == batch["y"]).float().mean()
            results[f"acc_{keep_label(keep)}"] = correct
        results["loss"] = torch.stack(losses).mean()
        return results

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["alignment_history"] = {
            "steps": self.align_steps,
            "history": self.align_history,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get("alignment_history")
        if saved is not None:
            self.align_steps = list(saved["steps"])
            self.align_history = {k: list(v) for k, v in saved["history"].items()}

    # ----------------------------------------------------------------- analysis
    @torch.no_grad()
    def analysis(self, datamodule: Any) -> dict[str, Any]:
        features = datamodule.feature_directions().to(self.device)
        splits = {
            split: {k: v.to(self.device) for k, v in datamodule.tensors(split).items()}
            for split in ("train", "test", "hard_only")
            if split in datamodule.splits
        }
        per_keep: dict[str, list[float]] = {"keeps": list(self.keeps)}
        for net in self.net:
            for split, tensors in splits.items():
                value = accuracy(net, tensors["x"].to(net.weight), tensors["y"])
                per_keep.setdefault(f"{split}_acc", []).append(value)
            easy, hard = class_view_alignment(net.weight, features)
            per_keep.setdefault("align_easy", []).append(easy)
            per_keep.setdefault("align_hard", []).append(hard)
        results: dict[str, Any] = {
            (name if name == "keeps" else f"{name}_vs_keep"): values
            for name, values in per_keep.items()
        }
        no_aug, aug = self.keeps.index(1.0), self.keeps.index(self.reference_keep)
        for name, values in per_keep.items():
            if name != "keeps":
                results[f"{name}_no_aug"] = values[no_aug]
                results[f"{name}_aug"] = values[aug]
        if "hard_only_acc" in per_keep:
            results["aug_gain"] = augmentation_gain(
                results["hard_only_acc_aug"], results["hard_only_acc_no_aug"]
            )
        results["align_steps"] = [float(s) for s in self.align_steps]
        for name, values in self.align_history.items():
            view, label = name.split("_", 1)
            results[f"align_{view}_over_training_{label}"] = list(values)
        return results


class ImageAugmentationModule(RunnerModule):
    """An image classifier trained with cross-entropy, with or without on-device augmentation.

    ``analysis`` (test split): accuracy under each probe of ``probes`` (``analysis.IMAGE_PROBES``:
    clean, flipped, shifted, centre occluded, centre only), as ``probe_acc_<name>`` and as the
    curve ``probe_acc`` in the order of ``probes`` (reconstruction of the paper's CIFAR-10
    "feature manipulation" experiments: which cues the trained net relies on).

    Args:
        net: the classifier (e.g. ``dlt_runner.nn.resnet.ResNet``, ResNet-18).
        augmentation: an on-device transform ``t(x, generator)`` of training images, or None.
        probes: names from ``analysis.IMAGE_PROBES``.
        analysis_batch_size: test images per forward pass in the analysis.
        **kwargs: the base module's options.
    """

    def __init__(
        self,
        net: nn.Module,
        augmentation: Transform | None = None,
        probes: Sequence[str] = tuple(IMAGE_PROBES),
        analysis_batch_size: int = 500,
        **kwargs: Any,
    ) -> None:
        super().__init__(net=net, **kwargs)
        for name in probes:
            choose("probe", name, IMAGE_PROBES)
        self.augmentation = augmentation
        self.probes = list(probes)
        self.analysis_batch_size = positive_int("model.analysis_batch_size", analysis_batch_size)

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        x = batch["x"]
        if self.augmentation is not None:
            x = self.augmentation(x, self.step_generator())
        logits = self.net(x)
        acc = (logits.argmax(-1) == batch["y"]).float().mean()
        return F.cross_entropy(logits, batch["y"]), {"acc": acc}

    def evaluate(self, batch: Batch, split: str) -> Mapping[str, Tensor]:
        logits = self.net(batch["x"])
        return {
            "loss": F.cross_entropy(logits, batch["y"]),
            "acc": (logits.argmax(-1) == batch["y"]).float().mean(),
        }

    @torch.no_grad()
    def analysis(self, datamodule: Any) -> dict[str, Any]:
        test = datamodule.tensors("test")
        x, y = test["x"].to(self.device), test["y"].to(self.device)
        accuracies = probe_accuracies(self.net, x, y, self.probes, self.analysis_batch_size)
        results: dict[str, Any] = {f"probe_acc_{name}": acc for name, acc in accuracies.items()}
        results["probe_acc"] = [accuracies[name] for name in self.probes]
        return results
