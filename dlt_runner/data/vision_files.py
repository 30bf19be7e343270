"""Readers for the image datasets' own on-disk formats, in torchvision's folder layout.

torchvision's ``CIFAR10``/``CIFAR100``/``MNIST`` download into ``<root>/cifar-10-batches-py``,
``<root>/cifar-100-python`` and ``<root>/MNIST/raw``; these functions read those files directly
(the pickled batches of https://www.cs.toronto.edu/~kriz/cifar.html and the idx files of
http://yann.lecun.com/exdb/mnist/), so a machine with the files needs no torchvision, and the
arrays equal torchvision's ``dataset.data`` / ``dataset.targets``.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

#: name -> (folder under root, training files, test files, label key, number of classes)
CIFAR_LAYOUTS = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "labels",
        10,
    ),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
}
MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def expected_files(name: str, root: Path, train: bool) -> list[Path]:
    """The files ``read`` needs for one split (the first missing one names the problem)."""
    if name in CIFAR_LAYOUTS:
        folder, train_files, test_files, _, _ = CIFAR_LAYOUTS[name]
        return [root / folder / f for f in (train_files if train else test_files)]
    return [root / "MNIST" / "raw" / f for f in MNIST_FILES[train]]


def missing_files(name: str, root: Path, train: bool) -> list[Path]:
    """Files of one split that are absent (an MNIST idx file may also be gzipped)."""
    return [
        path
        for path in expected_files(name, root, train)
        if not path.exists() and not path.with_name(path.name + ".gz").exists()
    ]


def read(name: str, root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 (N, H, W, C) for CIFAR or (N, H, W) for MNIST, and integer labels."""
    if name in CIFAR_LAYOUTS:
        return _read_cifar(name, root, train)
    images, labels = (_read_idx(path) for path in expected_files(name, root, train))
    return images, labels.astype(np.int64)


def _read_cifar(name: str, root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    label_key = CIFAR_LAYOUTS[name][3]
    images, labels = [], []
    for path in expected_files(name, root, train):
        with path.open("rb") as file:
            batch = pickle.load(file, encoding="latin1")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(batch[label_key])
    return np.concatenate(images).transpose(0, 2, 3, 1), np.asarray(labels, dtype=np.int64)


def _read_idx(path: Path) -> np.ndarray:
    """An idx file: 2 zero bytes, a dtype code, the number of dimensions, big-endian sizes."""
    opener = gzip.open if not path.exists() else open
    source = path if path.exists() else path.with_name(path.name + ".gz")
    with opener(source, "rb") as file:
        raw = file.read()
    if raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{source} is not an idx file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=4 + 4 * ndim)
    return data.reshape(shape)


def write_cifar(name: str, root: Path, images: np.ndarray, labels: np.ndarray, train: bool) -> None:
    """Write ``images`` (N, 32, 32, 3 uint8) in CIFAR's pickled-batch format (tests, tiny sets)."""
    folder, train_files, test_files, label_key, n_classes = CIFAR_LAYOUTS[name]
    files = train_files if train else test_files
    (root / folder).mkdir(parents=True, exist_ok=True)
    for path, part in zip(files, np.array_split(np.arange(len(images)), len(files)), strict=True):
        batch = {
            "data": images[part].transpose(0, 3, 1, 2).reshape(len(part), -1),
            label_key: [int(v) for v in labels[part]],
        }
        with (root / folder / path).open("wb") as file:
            pickle.dump(batch, file)
    meta = "batches.meta" if name == "cifar10" else "meta"
    names_key = "label_names" if name == "cifar10" else "fine_label_names"
    with (root / folder / meta).open("wb") as file:
        pickle.dump({names_key: [f"class_{i}" for i in range(n_classes)]}, file)


def write_mnist(root: Path, images: np.ndarray, labels: np.ndarray, train: bool) -> None:
    """Write ``images`` (N, 28, 28 uint8) and labels as MNIST's idx files (tests, tiny sets)."""
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for filename, array in zip(MNIST_FILES[train], (images, labels), strict=True):
        array = np.asarray(array, dtype=np.uint8)
        header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
            int(size).to_bytes(4, "big") for size in array.shape
        )
        (folder / filename).write_bytes(header + array.tobytes())
