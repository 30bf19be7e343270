"""A synthetic token task for the transformer variant: sort a sequence of symbols.

Stands in for the BERT corpora, which need downloads: every position must attend to the
whole sequence to know its output, so the task exercises attention. Generated from the
run seed; train, val and test are disjoint draws of one stream.
"""

from __future__ import annotations

from typing import Any

import torch

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import positive_int


class SortingData(TensorDataModule):
    """``x``: (N, length) symbols in [0, vocab); ``y``: the same sequence sorted.

    Args:
        vocab: number of symbols.
        length: sequence length.
        n_train, n_val, n_test: sequences per split.
    """

    def __init__(
        self,
        vocab: int = 32,
        length: int = 16,
        n_train: int = 20000,
        n_val: int = 1000,
        n_test: int = 2000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab = positive_int("data.vocab", vocab)
        self.length = positive_int("data.length", length)
        self.sizes = {
            "train": positive_int("data.n_train", n_train),
            "val": positive_int("data.n_val", n_val),
            "test": positive_int("data.n_test", n_test),
        }

    def build(self) -> dict[str, Batch]:
        generator = torch.Generator().manual_seed(self.seed)
        splits = {}
        for name, size in self.sizes.items():
            x = torch.randint(0, self.vocab, (size, self.length), generator=generator)
            splits[name] = {"x": x, "y": x.sort(dim=1).values}
        return splits
