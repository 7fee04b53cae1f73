"""The conformance suite every registered codec passes: it is covered the moment it registers."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lsc_ort
from tests.conftest import sparse_array
from tests.hostile import corrupt_randomly, refresh_crc

CODECS = lsc_ort.available_codecs()

SHAPES = [(1,), (7,), (0,), (3, 0), (1, 1), (5, 3), (17, 33), (64, 64), (3, 5, 7), (8, 3, 3, 3),
          (4, 1, 5, 5), (2, 3, 4, 5, 6), ()]
SPARSITIES = [0.0, 0.3, 0.5, 0.9, 0.99, 1.0]


def assert_bit_exact(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()


def roundtrip(array: np.ndarray, codec: str, **params) -> bytes:
    original = array.copy()
    blob = lsc_ort.encode(array, codec, **params)
    assert_bit_exact(lsc_ort.decode(blob), array)
    assert array.tobytes() == original.tobytes(), "encode modified its input"
    return blob


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_roundtrip_shapes(codec: str, shape: tuple[int, ...]) -> None:
    for sparsity in (0.0, 0.7, 1.0):
        roundtrip(sparse_array(shape, sparsity), codec)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8])
def test_roundtrip_dtypes_and_sparsity(codec: str, sparsity: float, dtype: type) -> None:
    array = sparse_array((37, 45), sparsity, dtype, seed=int(sparsity * 100))
    scale = {"scale": 0.125} if dtype == np.int8 else {}
    blob = lsc_ort.encode(array, codec, **scale)
    assert_bit_exact(lsc_ort.decode(blob), array)
    info = lsc_ort.inspect(blob)
    assert info["codec"] == codec
    assert info["nnz"] == np.count_nonzero(array)
    assert info["shape"] == [37, 45]
    assert info["total_bytes"] == len(blob)
    assert info["scale"] == (0.125 if dtype == np.int8 else 1.0)


@pytest.mark.parametrize("codec", CODECS)
def test_special_float_values_roundtrip(codec: str) -> None:
    specials = np.array([0x80000000, 0x7FC00001, 0xFFC12345, 0x7F800000, 0xFF800000, 0x00000001,
                         0x807FFFFF, 0x7F7FFFFF, 0x3F800000, 0], dtype=np.uint32)
    array = np.zeros((13, 11), dtype=np.uint32)
    array.reshape(-1)[:: 11][: specials.size] = specials
    roundtrip(array.view(np.float32), codec)
    half = np.array([0x8000, 0x7E01, 0xFC00, 0x0001, 0x7BFF, 0], dtype=np.uint16)
    roundtrip(np.tile(half, 7).reshape(6, 7).view(np.float16), codec)


@pytest.mark.parametrize("codec", CODECS)
def test_negative_zero_is_a_nonzero(codec: str) -> None:
    array = np.array([[0.0, -0.0, 0.0], [-0.0, 0.0, 1.0]], dtype=np.float32)
    blob = roundtrip(array, codec)
    assert lsc_ort.inspect(blob)["nnz"] == 3


bit_patterns = hnp.arrays(
    dtype=np.uint32,
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=9),
    elements=st.one_of(st.just(0), st.just(0), st.integers(0, 2**32 - 1)),
)


@pytest.mark.parametrize("codec", CODECS)
@given(bits=bit_patterns)
def test_roundtrip_property(codec: str, bits: np.ndarray) -> None:
    roundtrip(bits.view(np.float32), codec)


@pytest.mark.parametrize("codec", CODECS)
@given(data=st.data())
def test_roundtrip_structured_sparsity_property(codec: str, data: st.DataObject) -> None:
    """Block-structured masks (zero rows, columns, tiles) exercise the block layers."""
    rows = data.draw(st.integers(1, 40))
    cols = data.draw(st.integers(1, 40))
    array = np.arange(1, rows * cols + 1, dtype=np.float32).reshape(rows, cols)
    for _ in range(data.draw(st.integers(0, 6))):
        r0, c0 = data.draw(st.integers(0, rows - 1)), data.draw(st.integers(0, cols - 1))
        array[r0 : r0 + data.draw(st.integers(1, rows)), c0 : c0 + data.draw(st.integers(1, cols))] = 0
    roundtrip(array, codec)


@pytest.mark.parametrize("codec", CODECS)
def test_truncated_blob_raises(codec: str) -> None:
    blob = lsc_ort.encode(sparse_array((20, 30), 0.8), codec)
    for length in sorted({0, 3, 10, 39, 40, 100, len(blob) // 2, len(blob) - 1}):
        with pytest.raises(ValueError, match=r"truncated|shorter"):
            lsc_ort.decode(blob[:length])
    with pytest.raises(ValueError, match="trailing"):
        lsc_ort.decode(blob + b"\0")


@pytest.mark.parametrize("codec", CODECS)
def test_corrupted_byte_fails_the_checksum(codec: str) -> None:
    blob = bytearray(lsc_ort.encode(sparse_array((20, 30), 0.8), codec))
    for position in range(20, len(blob), max(1, len(blob) // 40)):
        corrupted = bytearray(blob)
        corrupted[position] ^= 0x10
        with pytest.raises(ValueError, match="checksum"):
            lsc_ort.decode(bytes(corrupted))


@pytest.mark.parametrize("codec", CODECS)
def test_header_fields_are_validated(codec: str) -> None:
    blob = bytearray(lsc_ort.encode(sparse_array((20, 30), 0.8), codec))
    cases = {
        "magic": (0, b"XXXX"),
        "version": (4, struct.pack("<H", 2)),
        "codec id": (6, b"\x63"),
        "dtype": (7, b"\x09"),
        "reserved": (23, b"\x01"),
        "nnz": (24, struct.pack("<Q", 600)),
    }
    expected = {"magic": "magic", "version": "version", "codec id": "codec id", "dtype": "dtype",
                "reserved": "reserved", "nnz": "non-zeros|nnz|entries|values|out of range|positions"}
    for name, (offset, patch) in cases.items():
        corrupted = bytearray(blob)
        corrupted[offset : offset + len(patch)] = patch
        with pytest.raises(ValueError, match=expected[name]):
            lsc_ort.decode(refresh_crc(corrupted))


@pytest.mark.parametrize("codec", CODECS)
def test_structural_corruption_with_valid_checksum_never_crashes(codec: str) -> None:
    """Byte flips with the CRC recomputed: decode either raises ValueError or returns an array
    of the declared shape; never another exception."""
    array = sparse_array((24, 40), 0.85, seed=3)
    blob = bytearray(lsc_ort.encode(array, codec))
    rng = np.random.default_rng(7)
    for _ in range(300):
        corrupted = corrupt_randomly(bytes(blob), rng, rng.integers(1, 4))
        try:
            decoded = lsc_ort.decode(corrupted)
        except ValueError:
            continue
        assert decoded.size == np.prod(struct.unpack_from("<2Q", corrupted, 40))


@pytest.mark.parametrize("codec", CODECS)
def test_inspect_reports_sizes_and_bound(codec: str) -> None:
    array = sparse_array((64, 48), 0.9)
    blob = lsc_ort.encode(array, codec)
    info = lsc_ort.inspect(blob)
    assert info["header_bytes"] + sum(info["sections"].values()) <= info["total_bytes"]
    assert info["entropy_bound_bytes"] == pytest.approx(lsc_ort.entropy_bound(array))
    assert info["ratio"] == pytest.approx(array.nbytes / len(blob))
    assert info["bits_per_weight"] == pytest.approx(8 * len(blob) / array.size)
    assert info["sparsity"] == pytest.approx(0.9, abs=1e-3)


@pytest.mark.parametrize("codec", CODECS)
def test_encode_rejects_unknown_options(codec: str) -> None:
    with pytest.raises(TypeError, match="unexpected"):
        lsc_ort.encode(np.ones(4, np.float32), codec, no_such_option=1)


def test_encode_rejects_unsupported_inputs() -> None:
    with pytest.raises(ValueError, match="float64"):
        lsc_ort.encode(np.ones(4), "lsc")
    with pytest.raises(ValueError, match="unknown codec"):
        lsc_ort.encode(np.ones(4, np.float32), "nope")
    with pytest.raises(ValueError, match="int8 weights only"):
        lsc_ort.encode(np.ones(4, np.float32), "lsc", scale=2.0)
    with pytest.raises(ValueError, match="rank"):
        lsc_ort.encode(np.ones((1,) * 9, np.float32), "dense")


def test_auto_codec_picks_the_smallest_blob() -> None:
    array = sparse_array((40, 50), 0.9)
    sizes = {codec: len(lsc_ort.encode(array, codec)) for codec in CODECS}
    assert len(lsc_ort.encode(array, "auto")) == min(sizes.values())


def test_available_codecs_lists_the_builtin_formats() -> None:
    assert set(CODECS) >= {"dense", "csr", "relidx", "bitmap", "bsr", "lsc"}
