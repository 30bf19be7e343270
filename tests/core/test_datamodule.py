"""TensorDataModule: chunks of minibatches, per-epoch shuffling by (seed, epoch), DDP shards."""

from __future__ import annotations

import torch

from dlt_runner.core.datamodule import EvalBatches, TrainChunks


def _data(n: int = 10) -> dict[str, torch.Tensor]:
    return {"x": torch.arange(n, dtype=torch.float32), "y": torch.arange(n) * 10}


def test_full_batch_chunk_repeats_the_same_tensors_without_copying():
    data = _data()
    chunks = list(TrainChunks(data, None, steps_per_call=5, seed=0, epoch=lambda: 0))
    assert len(chunks) == 1 and len(chunks[0]) == 5
    assert all(batch["x"] is data["x"] for batch in chunks[0])


def test_minibatches_cover_every_index_once_per_epoch():
    loader = TrainChunks(_data(10), batch_size=3, steps_per_call=2, seed=1, epoch=lambda: 0)
    assert loader.steps_per_epoch() == 4 and len(loader) == 2
    seen = torch.cat([batch["x"] for chunk in loader for batch in chunk])
    assert sorted(seen.tolist()) == list(range(10))
    pairs = [(b["x"] * 10).long() == b["y"] for chunk in loader for b in chunk]
    assert all(bool(p.all()) for p in pairs), "x and y must be indexed together"


def test_shuffle_depends_only_on_seed_and_epoch():
    epoch = {"value": 0}
    loader = TrainChunks(_data(10), 4, 1, seed=3, epoch=lambda: epoch["value"])
    first = [b["x"] for chunk in loader for b in chunk]
    again = [b["x"] for chunk in loader for b in chunk]
    epoch["value"] = 1
    other = [b["x"] for chunk in loader for b in chunk]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_ranks_see_disjoint_shards():
    shards = [
        torch.cat(
            [
                b["x"]
                for chunk in TrainChunks(_data(12), 3, 1, 0, lambda: 0, rank=r, world_size=2)
                for b in chunk
            ]
        )
        for r in (0, 1)
    ]
    assert set(shards[0].tolist()).isdisjoint(shards[1].tolist())
    assert sorted(shards[0].tolist() + shards[1].tolist()) == list(range(12))


def test_eval_batches_keep_order():
    batches = list(EvalBatches(_data(7), batch_size=3))
    assert [len(b["x"]) for b in batches] == [3, 3, 1]
    assert torch.cat([b["x"] for b in batches]).tolist() == list(range(7))


def test_a_chunk_of_several_passes_draws_each_pass_as_its_own_permutation():
    # 10 rows in minibatches of 3 -> 4 steps a pass; 8 steps a call hold 2 whole passes.
    epoch = {"value": 0}
    loader = TrainChunks(_data(10), 3, steps_per_call=8, seed=2, epoch=lambda: epoch["value"])
    assert loader.passes_per_epoch() == 2 and loader.steps_per_epoch() == 8 and len(loader) == 1
    (chunk,) = list(loader)
    for data_pass in (chunk[:4], chunk[4:]):
        assert sorted(torch.cat([b["x"] for b in data_pass]).tolist()) == list(range(10))
    # The same passes, one per epoch, with a chunk of one pass: epochs 0 and 1 there are the
    # two passes of epoch 0 here.
    single = TrainChunks(_data(10), 3, steps_per_call=4, seed=2, epoch=lambda: epoch["value"])
    per_pass = []
    for value in (0, 1):
        epoch["value"] = value
        per_pass += [b["x"] for c in single for b in c]
    assert all(torch.equal(a["x"], b) for a, b in zip(chunk, per_pass, strict=True))


def _xs(chunks) -> list[list[list[float]]]:
    return [[batch["x"].tolist() for batch in chunk] for chunk in chunks]


def test_a_loader_resumed_inside_an_epoch_serves_the_rest_of_that_epoch_once():
    # 20 rows in minibatches of 3 -> 7 steps a pass, chunks of 2, 2, 2 and 1 steps.
    trained = {"value": 0}
    saved = TrainChunks(
        _data(20), 3, 2, seed=4, epoch=lambda: 1, trained_in_epoch=lambda: trained["value"]
    )
    epoch = _xs(saved)
    assert [len(chunk) for chunk in epoch] == [2, 2, 2, 1]
    for done in range(len(epoch) + 1):
        trained["value"] = done
        state = saved.state_dict()
        assert state == {"epoch": 1, "chunks_trained": done}
        resumed = TrainChunks(_data(20), 3, 2, seed=4, epoch=lambda: 1)
        resumed.load_state_dict(state)
        assert _xs(resumed) == epoch[done:]
        assert _xs(resumed) == epoch, "the skip applies to the first iteration only"
    later = TrainChunks(_data(20), 3, 2, seed=4, epoch=lambda: 2)
    later.load_state_dict({"epoch": 1, "chunks_trained": 3})
    assert len(_xs(later)) == 4, "a state from another epoch skips nothing"


def test_a_full_batch_loader_resumed_inside_an_epoch_serves_the_remaining_chunks():
    # A full-batch epoch is one chunk: resumed after it, the epoch has nothing left.
    loader = TrainChunks(_data(), None, steps_per_call=5, seed=0, epoch=lambda: 0)
    loader.load_state_dict({"epoch": 0, "chunks_trained": 1})
    assert list(loader) == [] and len(list(loader)) == 1
    loader.load_state_dict({"epoch": 0, "chunks_trained": 0})
    assert len(list(loader)) == 1


def test_an_unknown_split_is_a_config_error_naming_the_splits():
    import pytest

    from dlt_runner.core.datamodule import TensorDataModule
    from dlt_runner.core.errors import ConfigError

    class TwoSplits(TensorDataModule):
        def build(self):
            return {"train": {"x": torch.zeros(3, 2)}, "test": {"x": torch.ones(2, 2)}}

    data = TwoSplits()
    assert data.tensors("test")["x"].shape == (2, 2)
    with pytest.raises(ConfigError, match="no data split 'krr'; the data has: train, test"):
        data.tensors("krr")
