"""Packing of fixed-width unsigned codes and bit masks into bytes, LSB first."""

from __future__ import annotations

import numpy as np

from lsc_ort.format import BlobFormatError


def packed_size(count: int, width: int) -> int:
    """Bytes taken by ``count`` codes of ``width`` bits."""
    return (count * width + 7) // 8


def pack_codes(codes: np.ndarray, width: int) -> np.ndarray:
    """Pack unsigned ``codes`` (each < 2**width) into bytes, LSB first: code ``i`` occupies
    bits ``[i*width, (i+1)*width)`` of the little-endian bit stream."""
    codes = np.asarray(codes)
    if width == 8:
        return codes.astype(np.uint8)
    if width == 16:
        return codes.astype("<u2").view(np.uint8)
    shifts = np.arange(width, dtype=np.uint32)
    bitplanes = ((codes.astype(np.uint32)[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bitplanes.reshape(-1), bitorder="little")


def unpack_codes(data: np.ndarray, count: int, width: int, what: str) -> np.ndarray:
    """Inverse of :func:`pack_codes`; checks the byte count and that padding bits are zero."""
    if data.size != packed_size(count, width):
        raise BlobFormatError(
            f"{what} has {data.size} bytes, expected {packed_size(count, width)} "
            f"({count} codes of {width} bits)"
        )
    if width == 8:
        return data.astype(np.int64)
    if width == 16:
        return data.view("<u2").astype(np.int64)
    bits = np.unpackbits(data, bitorder="little")
    if bits[count * width :].any():
        raise BlobFormatError(f"{what} has non-zero padding bits after the last code")
    weights = (1 << np.arange(width, dtype=np.int64))
    return bits[: count * width].reshape(count, width).astype(np.int64) @ weights


def pack_mask(mask: np.ndarray) -> np.ndarray:
    """Pack a boolean mask into bytes, LSB first (bit ``i`` is element ``i``)."""
    return np.packbits(mask.reshape(-1), bitorder="little")


def unpack_mask(data: np.ndarray, count: int, what: str) -> np.ndarray:
    """Inverse of :func:`pack_mask`; checks the byte count and that padding bits are zero."""
    expected = (count + 7) // 8
    if data.size != expected:
        raise BlobFormatError(f"{what} has {data.size} bytes, expected {expected} for {count} bits")
    bits = np.unpackbits(data, bitorder="little").view(bool)
    if bits[count:].any():
        raise BlobFormatError(f"{what} has non-zero padding bits after bit {count}")
    return bits[:count]
