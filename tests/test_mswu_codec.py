"""The mswu codec on unified tensors (the conformance suite covers it on arbitrary ones): bit-exact
round trips in both readers, automatic block shapes, sizes, inspect facts, hostile blobs."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import lsc_ort
from lsc_ort import native
from lsc_ort.codecs import get_codec
from lsc_ort.format import parse_blob
from lsc_ort.mswu import project
from tests.hostile import corrupt_randomly, refresh_crc

NATIVE = native.library_available()
requires_native = pytest.mark.skipif(not NATIVE, reason="native library not built")


def unified(shape: tuple[int, ...], block: object, sparsity: float = 0.5, unify: float = 0.4, seed: int = 0,
            dtype: type = np.float32) -> np.ndarray:
    weight = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return project(weight, block, sparsity, unify).weight  # type: ignore[arg-type]


def special_blocks() -> np.ndarray:
    """Unified blocks of -0.0 / NaN / inf magnitudes, int-like values, and free blocks."""
    bits = np.zeros((6, 8), np.uint32)
    bits[0, :4] = [0x80000000, 0, 0x80000000, 0x80000000]  # magnitude +0 with signs: kept, unified
    bits[1, :4] = [0x7FC00001, 0xFFC00001, 0x7FC00001, 0x7FC00001]  # NaN payload, both signs
    bits[2, 4:] = [0x7F800000, 0xFF800000, 0xFF800000, 0x7F800000]  # +-inf
    bits[3, :4] = [0x00000001, 0x80000001, 0x00000001, 0x00000001]  # denormals
    bits[4] = np.arange(1, 9, dtype=np.uint32) << 20  # free
    return bits.view(np.float32)


def blobs() -> list[tuple[str, bytes, np.ndarray]]:
    cases = []
    for name, array, options in [
        ("1x4", unified((37, 45), (1, 4)), {}),
        ("4x1", unified((40, 50), (4, 1)), {}),
        ("2x2 edges", unified((33, 65), (2, 2)), {}),
        ("kernel", unified((8, 3, 5, 5), "kernel"), {}),
        ("conv 1x4", unified((16, 6, 5, 5), (1, 4)), {}),
        ("fp16", unified((30, 17), (1, 4), dtype=np.float16), {}),
        ("free coding 1", unified((24, 40), (1, 4), 0.3, 0.3), {"free_coding": 1}),
        ("free coding 1 sparse", lsc_ort.decode(lsc_ort.encode(unified((24, 40), (1, 4), 0.1, 0.3), "lsc")),
         {"free_coding": 1}),
        ("whole matrix", unified((6, 7), (6, 7), 0.0, 1.0), {"block": (6, 7)}),
        ("1x64", unified((5, 130), (1, 64), 0.2, 0.6), {"block": (1, 64)}),
        ("70x1", unified((140, 3), (70, 1), 0.0, 0.5), {"block": (70, 1)}),
        ("specials", special_blocks(), {"block": (1, 4)}),
        ("all pruned", np.zeros((8, 8), np.float32), {}),
    ]:
        cases.append((name, lsc_ort.encode(array, "mswu", **options), array))
    q = np.random.default_rng(4).integers(-128, 128, (20, 24)).astype(np.int8)
    q[:, :8] = np.where(np.random.default_rng(5).random((20, 8)) < 0.5, -5, 5)
    q[0, 8:12] = -128  # |-128| is not an int8: such blocks stay free
    q[1, 12:16] = 127
    q[2, 16:20] = 0
    cases.append(("int8", lsc_ort.encode(q, "mswu", scale=0.25, block=(1, 4)), q))
    return cases


@pytest.mark.parametrize("name,blob,array", blobs(), ids=[c[0] for c in blobs()])
def test_round_trip_bit_exact(name: str, blob: bytes, array: np.ndarray) -> None:
    decoded = lsc_ort.decode(blob)
    assert decoded.dtype == array.dtype and decoded.tobytes() == array.tobytes()
    if NATIVE:
        assert native.native_decode(blob) == array.tobytes()
        assert native.native_validate(blob) == np.count_nonzero(
            array.reshape(-1).view({1: np.uint8, 2: np.uint16, 4: np.uint32}[array.itemsize]))


def test_unified_structure_is_stored_compactly() -> None:
    weight = unified((120, 400), (1, 4), 0.6, 0.3)
    blob = lsc_ort.encode(weight, "mswu")
    info = lsc_ort.inspect(blob)
    assert info["params"] == {"block_rows": 1, "block_cols": 4, "free_coding": 0}
    assert (info["pruned_blocks"], info["unified_blocks"], info["free_blocks"]) == (7200, 3600, 1200)
    assert info["multiplies"] == 3600 + 4 * 1200 and info["multiplies_saved"] == pytest.approx(0.825)
    # magnitude + 4 sign bits per unified block, 4 values per free block, 1.4 mask bits per block
    expected = 3600 * 4.5 + 1200 * 16 + (12000 + 4800) / 8
    assert len(blob) <= expected + 6 * 64 + info["header_bytes"]
    assert len(blob) < 0.5 * len(lsc_ort.encode(weight, "lsc"))
    assert lsc_ort.inspect(lsc_ort.encode(weight, "auto"))["codec"] == "mswu"


def test_auto_block_finds_the_structure() -> None:
    for block, shape in [((1, 4), (64, 64)), ((4, 1), (64, 64)), ((2, 2), (64, 64)), ((1, 2), (30, 30)),
                         ((8, 1), (64, 16))]:
        params = lsc_ort.inspect(lsc_ort.encode(unified(shape, block, 0.5, 0.5), "mswu"))["params"]
        assert (params["block_rows"], params["block_cols"]) == block, block
    conv = unified((16, 8, 3, 3), "kernel", 0.3, 0.6)
    assert lsc_ort.inspect(lsc_ort.encode(conv, "mswu"))["params"]["block_cols"] == 9


def test_encode_options() -> None:
    weight = unified((16, 16), (1, 4))
    for coding in (0, 1):
        blob = lsc_ort.encode(weight, "mswu", free_coding=coding, block=(2, 2))
        assert lsc_ort.inspect(blob)["params"] == {"block_rows": 2, "block_cols": 2, "free_coding": coding}
        assert lsc_ort.decode(blob).tobytes() == weight.tobytes()
    with pytest.raises(ValueError, match="free_coding"):
        lsc_ort.encode(weight, "mswu", free_coding=2)
    with pytest.raises(ValueError, match="block"):
        lsc_ort.encode(weight, "mswu", block=(0, 4))


def section_offset(blob: bytes, index: int) -> int:
    header = parse_blob(blob).header
    table = 40 + 8 * len(header.shape) + 8 * len(header.params)
    return struct.unpack_from("<Q", blob, table + 16 * index)[0]


def assert_both_reject(blob: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lsc_ort.decode(blob)
    if NATIVE:
        with pytest.raises(ValueError, match=message):
            native.native_validate(blob)


def test_hostile_blobs_name_the_problem() -> None:
    weight = unified((9, 10), (2, 4), 0.3, 0.5)  # edge blocks on both sides
    blob = lsc_ort.encode(weight, "mswu", block=(2, 4), free_coding=0)
    codec = get_codec("mswu")
    view = parse_blob(blob)
    assert view.header.params == (2, 4, 0)
    params = 40 + 16

    def patched(offset: int, data: bytes) -> bytes:
        corrupted = bytearray(blob)
        corrupted[offset:offset + len(data)] = data
        return refresh_crc(corrupted)

    assert_both_reject(patched(params + 16, struct.pack("<q", 2)), "free_coding")
    assert_both_reject(patched(params, struct.pack("<q", 10)), "block_rows")
    assert_both_reject(patched(params + 8, struct.pack("<q", 0)), "block_cols")
    # A magnitude with its sign bit set.
    magnitudes = section_offset(blob, 2)
    assert_both_reject(patched(magnitudes + 3, bytes([blob[magnitudes + 3] | 0x80])), "sign")
    # A sign bit of a position outside the matrix: the last unified block on the right edge.
    infos = codec._read(view)
    edge = [i for i, b in enumerate(infos["unified_ids"]) if b % 3 == 2]
    assert edge, "the fixture needs a unified edge block"
    bit = edge[0] * 8 + 3  # row 0, column 3 of the block: column 11 > 9
    signs = section_offset(blob, 3)
    assert_both_reject(patched(signs + bit // 8, bytes([blob[signs + bit // 8] | 1 << (bit % 8)])), "outside")
    # A free value outside the matrix.
    free = [i for i, b in enumerate(infos["free_ids"]) if b % 3 == 2]
    assert free, "the fixture needs a free edge block"
    values = section_offset(blob, 5)
    at = values + 4 * (free[0] * 8 + 3)
    assert_both_reject(patched(at, struct.pack("<f", 1.0)), "outside")
    # Masks of the wrong size, padding bits set.
    table = 40 + 16 + 24
    assert_both_reject(patched(table + 8, struct.pack("<Q", 1)), "block_mask|section|overlap|runs past")
    nblocks = 5 * 3
    mask = section_offset(blob, 0)
    assert_both_reject(patched(mask + 1, bytes([blob[mask + 1] | 0x80])), "padding|unified_mask|magnitudes")
    assert nblocks % 8


@requires_native
def test_native_and_python_agree_on_corrupted_unified_blobs() -> None:
    rng = np.random.default_rng(17)
    disagreements = []
    for _, blob, _ in blobs()[:8]:
        for _ in range(150):
            candidate = corrupt_randomly(blob, rng, rng.integers(1, 3))
            try:
                expected: bytes | ValueError = lsc_ort.decode(candidate).tobytes()
            except ValueError as error:
                expected = error
            try:
                actual: bytes | ValueError = native.native_decode(candidate)
            except ValueError as error:
                actual = error
            if isinstance(expected, ValueError) != isinstance(actual, ValueError):
                disagreements.append((expected, actual))
            elif not isinstance(expected, ValueError):
                assert actual == expected
    assert not disagreements, disagreements[0]
