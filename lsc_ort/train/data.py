"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (its IDX files), for the examples and
benchmarks that train small networks; nothing is downloaded."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
"""Where ``apt-get install dataset-fashion-mnist`` puts the IDX files."""

_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DatasetUnavailable(RuntimeError):
    """The data set is not installed, or one of its files is not what it should be."""


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or plain) of unsigned bytes (type code 0x08) as a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DatasetUnavailable(f"{path}: not a uint8 IDX file")
    rank = data[3]
    start = 4 + 4 * rank
    if len(data) < start:
        raise DatasetUnavailable(f"{path}: truncated IDX header")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    count = int(np.prod(dims, dtype=np.int64))
    if len(data) - start != count:
        raise DatasetUnavailable(f"{path}: {len(data) - start} data bytes, header declares {count}")
    return np.frombuffer(data, np.uint8, count, start).reshape(dims)


def load_fashion_mnist(root: Path = FASHION_MNIST) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train images, train labels, test images, test labels)``: images float32 in [0, 1] of
    shape ``[N, 1, 28, 28]``, labels int64.

    Raises:
        DatasetUnavailable: a file is missing (naming the Debian package) or malformed.
    """
    arrays = []
    for name in _FILES:
        path = next((p for p in (root / f"{name}.gz", root / name) if p.exists()), None)
        if path is None:
            raise DatasetUnavailable(f"Fashion-MNIST is not installed ({root}/{name}[.gz] missing; "
                                     "apt-get install dataset-fashion-mnist)")
        arrays.append(read_idx(path))
    train_x, train_y, test_x, test_y = arrays
    scale = np.float32(1 / 255)
    return ((train_x[:, None] * scale).astype(np.float32), train_y.astype(np.int64),
            (test_x[:, None] * scale).astype(np.float32), test_y.astype(np.int64))
