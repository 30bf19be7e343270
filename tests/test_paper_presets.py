"""Every paper-scale preset on an image dataset runs for two steps on tiny files written in the
datasets' own on-disk formats (torchvision's layout), and fails with the message naming
``paths.data_dir`` and ``data.download=true`` when the files are absent.

Presets are found by composing every experiment and keeping those whose ``data._target_`` is
(a subclass of) :class:`~dlt_runner.data.vision.VisionData`, so presets added later are covered.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from dlt_runner import CONFIG_DIR
from dlt_runner.core.config_checks import available_experiments
from dlt_runner.core.errors import DatasetUnavailable

N_TRAIN, N_TEST = 60, 30
SMALL = [
    "trainer.max_steps=2",
    "data.n_train=null",
    "data.n_val=10",
    "data.n_test=20",
    "data.batch_size=16",
    "data.eval_batch_size=20",
    "data.steps_per_call=1",
]


def _image_presets() -> list[tuple[str, str]]:
    """(experiment, dataset name) for every experiment whose data is a VisionData."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import get_class

    from dlt_runner.data.vision import VisionData

    presets = []
    for experiment in available_experiments():
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[f"experiment={experiment}"])
        target = cfg.data.get("_target_")
        if target and issubclass(get_class(target), VisionData):
            presets.append((experiment, str(cfg.data.name)))
    GlobalHydra.instance().clear()
    return presets


PRESETS = _image_presets()


def _write_cifar(folder: Path, files: dict[str, int], label_key: str, n_classes: int) -> None:
    """CIFAR's python pickles (https://www.cs.toronto.edu/~kriz/cifar.html): a dict with
    ``data`` (N, 3072) uint8 rows, channel-major 32x32 planes, and a list of labels."""
    rng = np.random.default_rng(len(files))
    folder.mkdir(parents=True, exist_ok=True)
    for filename, n in files.items():
        batch = {
            "data": rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8),
            label_key: [i % n_classes for i in range(n)],
        }
        (folder / filename).write_bytes(pickle.dumps(batch))


def _write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's idx format (http://yann.lecun.com/exdb/mnist/): 0, 0, dtype 0x08 (uint8),
    number of dimensions, then each size as a big-endian int32, then the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """CIFAR-10, CIFAR-100 and MNIST, N_TRAIN / N_TEST images each, as torchvision lays them out:
    cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta},
    cifar-100-python/{train, test, meta}, MNIST/raw/*-idx?-ubyte."""
    root = tmp_path_factory.mktemp("datasets")
    per_batch = N_TRAIN // 5
    cifar10 = root / "cifar-10-batches-py"
    _write_cifar(
        cifar10,
        {**{f"data_batch_{i}": per_batch for i in range(1, 6)}, "test_batch": N_TEST},
        "labels",
        10,
    )
    (cifar10 / "batches.meta").write_bytes(
        pickle.dumps({"label_names": [f"class_{i}" for i in range(10)]})
    )
    cifar100 = root / "cifar-100-python"
    _write_cifar(cifar100, {"train": N_TRAIN, "test": N_TEST}, "fine_labels", 100)
    (cifar100 / "meta").write_bytes(
        pickle.dumps({"fine_label_names": [f"class_{i}" for i in range(100)]})
    )
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, size=(n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return root


def test_presets_are_found():
    # Paper-scale presets exist on CIFAR-10 and MNIST; the search must see them.
    names = {name for _, name in PRESETS}
    assert {"cifar10", "mnist"} <= names, PRESETS


@pytest.mark.parametrize(("experiment", "dataset"), PRESETS, ids=[e for e, _ in PRESETS])
def test_preset_runs_two_steps_on_tiny_files(compose, tmp_path, data_dir, experiment, dataset):
    from dlt_runner.run import Runtime, run

    cfg = compose(
        f"experiment={experiment}",
        "trainer=cpu",
        "threads=1",
        "logger=none",
        f"paths.data_dir={data_dir}",
        *SMALL,
    )
    record = run(cfg, Runtime(run_dir=tmp_path / "run"))
    assert record["status"] == "ok"
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["status"] == "ok" and written["timing"]["steps"] == 2


@pytest.mark.parametrize(("experiment", "dataset"), PRESETS, ids=[e for e, _ in PRESETS])
def test_preset_without_files_names_the_fix(compose, tmp_path, experiment, dataset):
    from hydra.utils import instantiate

    cfg = compose(f"experiment={experiment}", f"paths.data_dir={tmp_path / 'empty'}")
    data = instantiate(cfg.data)
    with pytest.raises(DatasetUnavailable, match=r"paths\.data_dir.*data\.download=true"):
        data.prepare_data()
