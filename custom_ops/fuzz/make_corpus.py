"""Writes the seed corpora of the libFuzzer targets (custom_ops/fuzz/README.md).

Seeds are generated, never committed: valid blobs of every registered codec (several dtypes,
shapes, sparsities and codec parameters) and hand-made hostile ones for ``fuzz_blob``; the
convolutions of the test suite and a few absurd attribute sets for ``fuzz_conv``.

    python custom_ops/fuzz/make_corpus.py OUT     # writes OUT/blob/* and OUT/conv/*
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path
from typing import Any

import numpy as np

import lsc_ort
from lsc_ort.format import ValueDType, pack_blob

# (shape, sparsity, dtype) of the arrays every codec encodes.
ARRAYS: list[tuple[tuple[int, ...], float, Any]] = [
    ((), 0.0, np.float32), ((1,), 0.0, np.float32), ((0,), 0.0, np.float32), ((7,), 0.5, np.float16),
    ((6, 5), 0.5, np.float32), ((17, 33), 0.9, np.float32), ((16, 16), 0.7, np.float16), ((9, 11), 0.3, np.int8),
    ((4, 3, 3, 3), 0.6, np.float32), ((2, 3, 5), 0.8, np.float32), ((40, 37), 0.97, np.float32),
    ((3, 0), 0.0, np.float32), ((0, 4), 0.0, np.float32), ((8, 8), 1.0, np.float32), ((1, 300), 0.95, np.float32),
]

# Extra parameter sets of the codecs that take them (other codecs use their defaults).
PARAMS: dict[str, list[dict[str, Any]]] = {
    "lsc": [dict(block=(2, 3)), dict(block=(1, 1), code_bits=0), dict(block=(4, 4), code_bits=0),
            dict(block=(2, 2), code_bits=3, split=5), dict(code_bits=1, split=1),
            dict(block=(1, 8), code_bits=16, split=40000, chunk_block_rows=2)],
    "relidx": [dict(bits=b) for b in (1, 3, 8, 16)],
    "bsr": [dict(block=(3, 4)), dict(block=(1, 1))],
    "mswu": [dict(block=(2, 2)), dict(block=(4, 1), free_coding=0), dict(block=(1, 4), free_coding=1),
             dict(block=(3, 5))],
}

# Conv seeds: (X shape, weight shape, attributes), from tests/test_ops_conv.py and hostile sets.
CONVS: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ((2, 8, 13, 11), (16, 8, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 8, 13, 11), (16, 8, 3, 3), {"strides": [2, 2]}),
    ((1, 8, 13, 11), (16, 8, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ((1, 8, 12, 12), (16, 8, 4, 4), {"auto_pad": "SAME_LOWER", "strides": [3, 3]}),
    ((1, 8, 10, 10), (12, 8, 3, 3), {"auto_pad": "VALID"}),
    ((2, 8, 9, 9), (8, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}),
    ((1, 3, 40, 40), (16, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    ((1, 6, 21, 75), (10, 6, 3, 3), {"strides": [2, 2], "pads": [0, 1, 2, 3]}),
    ((1, 6, 20, 41), (10, 6, 4, 4), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 4, 100), (6, 4, 5), {"strides": [3], "pads": [2, 2], "dilations": [2]}),
    ((1, 6, 40), (8, 3, 5), {"group": 2, "dilations": [2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 5, 5), (3, 2, 3, 3), {"kernel_shape": [3, 3]}),
    ((1, 2, 20, 41), (4, 2, 9, 9), {"dilations": [3 * 2**61, 1]}),
    ((1, 2, 20, 40), (4, 2, 3, 3), {"dilations": [1, 2**63 - 1]}),
    ((1, 2, 5, 5), (4, 2, 3, 3), {"pads": [2**40, 0, 2**40, 0], "strides": [2**39, 1]}),
    ((1, 2, 0, 5), (4, 2, 1, 3), {"pads": [1, 0, 1, 0]}),
]
MODES = ["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]


def sparse(shape: tuple[int, ...], sparsity: float, dtype: Any, seed: int) -> np.ndarray:
    """Random non-zeros; odd seeds draw them from a few magnitudes with random signs, so that
    block codecs (mswu) find blocks to unify."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    if np.dtype(dtype) == np.int8:
        values = rng.integers(1, 128, size=size).astype(np.int8)
    elif seed % 2:
        values = (rng.choice([-1.0, 1.0], size) * rng.choice([0.5, 2.0], size)).astype(dtype)
    else:
        values = (rng.standard_normal(size) + 3.0).astype(dtype)
    values[rng.choice(size, round(sparsity * size), replace=False)] = 0
    return values.reshape(shape)


def hostile_blobs() -> list[bytes]:
    """Blobs of the input classes the fuzzer must keep handling: shapes whose dims overflow
    with a zero dim, huge declared shapes over almost no data, and matrices without columns."""
    f32 = ValueDType.FLOAT32
    return [
        pack_blob(codec_id=0, dtype=f32, shape=[0, 2**32 + 1, 2**32 - 1], params=[], sections=[b""], nnz=0),
        pack_blob(codec_id=0, dtype=f32, shape=[2**40, 0], params=[], sections=[b""], nnz=0),
        pack_blob(codec_id=5, dtype=f32, shape=[2**15, 2**24], params=[2**15, 2**24, 0, 0, 1],
                  sections=[b"\0", np.zeros(4, "<u8"), b"", b""], nnz=0),
        pack_blob(codec_id=5, dtype=f32, shape=[2**20, 0], params=[1, 1, 0, 0, 1],
                  sections=[b"", np.zeros(4, "<u8"), b"", b""], nnz=0),
    ]


def conv_input(x: tuple[int, ...], w: tuple[int, ...], attributes: dict[str, Any]) -> bytes:
    """A fuzz_conv input (layout documented in fuzz_conv.cc)."""
    present = 0
    values = [attributes.get("group", 1), *x, *w]
    for bit, name in enumerate(["kernel_shape", "strides", "dilations", "pads"]):
        if name in attributes:
            present |= 1 << bit
            values += attributes[name]
    head = bytes([1 if len(w) == 4 else 0, MODES.index(attributes.get("auto_pad", "NOTSET")), present])
    return head + struct.pack(f"<{len(values)}q", *values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to write blob/ and conv/ into")
    out = parser.parse_args().out
    (out / "blob").mkdir(parents=True, exist_ok=True)
    (out / "conv").mkdir(parents=True, exist_ok=True)
    count = 0
    for codec in lsc_ort.available_codecs():
        for i, (shape, sparsity, dtype) in enumerate(ARRAYS):
            array = sparse(shape, sparsity, dtype, seed=i)
            options = [{}, *PARAMS.get(codec, [])] if array.ndim == 2 and array.size >= 16 else [{}]
            for j, params in enumerate(options):
                if np.dtype(dtype) == np.int8:
                    params = {**params, "scale": 0.5}
                blob = lsc_ort.encode(array, codec, **params)
                (out / "blob" / f"{codec}-{i}-{j}").write_bytes(blob)
                count += 1
    for i, blob in enumerate(hostile_blobs()):
        (out / "blob" / f"hostile-{i}").write_bytes(blob)
    for i, (x, w, attributes) in enumerate(CONVS):
        (out / "conv" / f"conv-{i}").write_bytes(conv_input(x, w, attributes))
    print(f"{count} codec blobs ({', '.join(lsc_ort.available_codecs())}), {len(hostile_blobs())} hostile blobs, "
          f"{len(CONVS)} convolutions in {out}")


if __name__ == "__main__":
    main()
