"""The CIFAR/MNIST readers against files written in the datasets' own formats."""

from __future__ import annotations

import numpy as np
import pytest

from dlt_runner.core.errors import DatasetUnavailable
from dlt_runner.data import vision_files
from dlt_runner.data.vision import VisionData


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_round_trip(tmp_path, name):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=12)
    vision_files.write_cifar(name, tmp_path, images, labels, train=True)
    read_images, read_labels = vision_files.read(name, tmp_path, train=True)
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)


def test_mnist_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7)
    vision_files.write_mnist(tmp_path, images, labels, train=False)
    read_images, read_labels = vision_files.read("mnist", tmp_path, train=False)
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)


def test_datamodule_reads_the_files_as_nchw(tmp_path):
    rng = np.random.default_rng(2)
    for train, n in ((True, 20), (False, 6)):
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        vision_files.write_cifar("cifar10", tmp_path, images, rng.integers(0, 10, n), train)
    data = VisionData(name="cifar10", root=str(tmp_path), n_val=4, normalization="none")
    data.prepare_data()
    splits = data.build()
    assert splits["train"]["x"].shape == (16, 3, 32, 32)
    assert splits["val"]["x"].shape == (4, 3, 32, 32)
    assert splits["test"]["x"].shape == (6, 3, 32, 32)
    assert float(splits["train"]["x"].max()) <= 1.0


def test_absent_files_name_the_overrides(tmp_path):
    data = VisionData(name="mnist", root=str(tmp_path))
    with pytest.raises(DatasetUnavailable, match="paths.data_dir.*data.download=true"):
        data.prepare_data()
