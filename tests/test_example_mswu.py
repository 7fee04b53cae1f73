"""A seconds-long smoke run of examples/mswu_fashion_mnist.py on a tiny synthetic IDX dataset
(the full example takes minutes and is not run here)."""

from __future__ import annotations

import gzip
import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from tests.rewrite_fixtures import requires_native

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mswu_fashion_mnist.py"


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as out:
        out.write(header + array.astype(np.uint8).tobytes())


@requires_native
def test_example_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for split, count in (("train", 384), ("t10k", 128)):
        labels = rng.integers(0, 10, count)
        images = rng.integers(0, 60, (count, 28, 28)) + (labels * 20)[:, None, None]  # learnable
        write_idx(data / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", labels)
    spec = importlib.util.spec_from_file_location("mswu_fashion_mnist", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example  # dataclasses look their module up
    try:
        spec.loader.exec_module(example)
    finally:
        del sys.modules[spec.name]
    rows = example.main(["--data", str(data), "--workdir", str(tmp_path / "out"), "--epochs", "1",
                         "--admm-epochs", "1", "--finetune-epochs", "1", "--batch", "64"])
    out = capsys.readouterr().out
    assert [row.name.split()[0] for row in rows] == ["dense", "magnitude", "MSWU-A", "MSWU-B", "MSWU-C"]
    assert "mswu" in rows[2].codecs and "mswu" in rows[3].codecs
    assert all(0.0 <= row.accuracy <= 1.0 for row in rows)
    assert rows[0].multiplies > rows[2].multiplies > rows[3].multiplies and rows[0].multiplies > rows[4].multiplies
    assert rows[3].file_bytes < rows[0].file_bytes / 3
    assert "test accuracy, size and multiplications" in out
    assert (tmp_path / "out" / "lenet5-mswu-a-lsc.onnx").exists()
