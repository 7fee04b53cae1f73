"""The native blob reader accepts, rejects and decodes exactly what the Python codecs do."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import lsc_ort
from lsc_ort import native
from tests.conftest import sparse_array
from tests.hostile import corrupt_randomly, refresh_crc

pytestmark = pytest.mark.skipif(not native.library_available(), reason="native library not built")

CODECS = lsc_ort.available_codecs()


def blobs_for(codec: str) -> list[bytes]:
    arrays = [sparse_array(shape, sparsity, dtype, seed=i)
              for i, (shape, sparsity, dtype) in enumerate([
                  ((1,), 0.0, np.float32), ((0,), 0.0, np.float32), ((), 0.0, np.float32),
                  ((17, 33), 0.9, np.float32), ((64, 64), 0.5, np.float16), ((8, 3, 3, 3), 0.7, np.float32),
                  ((300, 257), 0.99, np.float32), ((40, 50), 1.0, np.float32), ((33, 65), 0.0, np.int8),
                  ((1, 5000), 0.95, np.float32), ((700, 130), 0.8, np.float32)])]
    special = np.array([0x80000000, 0x7FC00001, 1, 0], np.uint32).view(np.float32).reshape(2, 2)
    blobs = [lsc_ort.encode(a, codec, **({"scale": 0.5} if a.dtype == np.int8 else {})) for a in arrays]
    blobs.append(lsc_ort.encode(special, codec))
    if codec == "lsc":
        weight = sparse_array((130, 70), 0.9, seed=9)
        for params in [dict(block=(3, 5)), dict(block=(1, 1), code_bits=0),
                       dict(block=(4, 4), code_bits=0), dict(block=(2, 7), code_bits=3, split=5),
                       dict(code_bits=1, split=1),
                       dict(block=(1, 70), code_bits=16, split=40000, chunk_block_rows=7)]:
            blobs.append(lsc_ort.encode(weight, "lsc", **params))
    if codec == "f2f":
        weight = sparse_array((130, 70), 0.9, seed=9)
        for params in [dict(n_s=1), dict(n_in=2, n_out=15, n_s=5), dict(order=0), dict(block=(3, 5)),
                       dict(block=(1, 1), code_bits=0), dict(n_out=3000, segment_blocks=1),
                       dict(n_in=7, n_out=70, n_s=2, chunk_block_rows=9)]:
            blobs.append(lsc_ort.encode(weight, "f2f", **params))
        blobs.append(lsc_ort.encode(sparse_array((64, 80), 0.9, np.int8, seed=2), "f2f", scale=0.5))
        blobs.append(lsc_ort.encode(sparse_array((50, 33), 0.8, np.float16, seed=3), "f2f", n_s=3))
    if codec == "relidx":
        blobs += [lsc_ort.encode(sparse_array((50, 60), 0.97), "relidx", bits=b)
                  for b in (1, 3, 4, 8, 12, 16)]
    if codec == "bsr":
        blobs += [lsc_ort.encode(sparse_array((50, 61), 0.9), "bsr", block=b)
                  for b in [(3, 7), (50, 61), (1, 1)]]
    return blobs


@pytest.mark.parametrize("codec", CODECS)
def test_native_reader_decodes_every_python_blob_bit_exactly(codec: str) -> None:
    for blob in blobs_for(codec):
        expected = lsc_ort.decode(blob)
        assert native.native_validate(blob) == np.count_nonzero(expected.reshape(-1).view(
            {1: np.uint8, 2: np.uint16, 4: np.uint32}[expected.itemsize]))
        assert native.native_decode(blob) == expected.tobytes()


def declared_numel(blob: bytes) -> int:
    ndim = blob[20]
    return int(np.prod(struct.unpack_from(f"<{ndim}Q", blob, 40), dtype=object)) if ndim <= 8 else 0


@pytest.mark.parametrize("codec", CODECS)
def test_native_and_python_agree_on_corrupted_blobs(codec: str) -> None:
    """Random byte changes with a recomputed CRC: both readers accept or both reject, and
    accepted blobs decode identically. Never a crash."""
    rng = np.random.default_rng(11)
    disagreements = []
    for blob in blobs_for(codec)[3:8]:
        for _ in range(150):
            candidate = corrupt_randomly(blob, rng, rng.integers(1, 3))
            if declared_numel(candidate) > 1 << 22:
                continue  # a corrupted shape: decoding it densely only tests the allocator
            try:
                expected = lsc_ort.decode(candidate).tobytes()
            except ValueError as error:
                expected = error
            try:
                actual: bytes | ValueError = native.native_decode(candidate)
            except ValueError as error:
                actual = error
            if isinstance(expected, ValueError) != isinstance(actual, ValueError):
                disagreements.append((candidate, expected, actual))
            elif not isinstance(expected, ValueError):
                assert actual == expected
    assert not disagreements, disagreements[0][1:]


@pytest.mark.parametrize("codec", CODECS)
def test_native_reader_names_container_problems(codec: str) -> None:
    blob = lsc_ort.encode(sparse_array((20, 30), 0.8), codec)
    with pytest.raises(ValueError, match="truncated"):
        native.native_validate(blob[:-1])
    with pytest.raises(ValueError, match="truncated"):
        native.native_validate(blob[:12])
    corrupted = bytearray(blob)
    corrupted[-1] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        native.native_validate(bytes(corrupted))
    with pytest.raises(ValueError, match="magic"):
        native.native_validate(b"NOPE" + blob[4:])
    with pytest.raises(ValueError, match="version"):
        native.native_validate(refresh_crc(bytearray(blob[:4] + b"\x07\x00" + blob[6:])))
