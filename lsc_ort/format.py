"""The lsc-ort blob container, format version 1.

A *blob* is the self-describing byte string that stores one encoded weight tensor. The Python
encoders write it, and the C++ kernels (``custom_ops/src/blob.cc``) and the TVM converter read it.
All three follow this spec; ``docs/blob-format.md`` holds the same text with the per-codec section
layouts.

All integers are little-endian. Offsets are from the start of the blob.

======  ====  ============  ================================================================
offset  size  field         meaning
======  ====  ============  ================================================================
0       4     magic         ``b"LSCB"``
4       2     version       u16, ``1``; readers reject any other version
6       1     codec         u8 codec id (``lsc_ort.codecs``: 0 dense, 1 csr, 2 relidx,
                            3 bitmap, 4 bsr, 5 lsc, 6 f2f, 7 mswu)
7       1     dtype         u8 value dtype: 1 float32, 2 float16, 3 int8 (``value = scale * q``)
8       8     total_size    u64, length of the blob in bytes
16      4     crc32         u32, CRC-32 (ISO-HDLC polynomial, as ``zlib.crc32``) of bytes
                            ``[20, total_size)``
20      1     ndim          u8, 0..8
21      1     nparams       u8, number of codec parameters
22      1     nsections     u8, number of sections
23      1     flags         u8, 0 in version 1
24      8     nnz           u64, number of elements whose bit pattern is not all zeros
32      4     scale         f32, int8 dequantization scale; exactly 1.0 for float dtypes
36      4     reserved      u32, 0
40      8*d   dims          u64 each, the logical tensor shape; the product of the non-zero
                            dims, times the item size, is below 2^62
..      8*p   params        i64 each, the codec parameters in the codec's documented order
..      16*s  sections      section table: ``(offset u64, nbytes u64)`` per section
======  ====  ============  ================================================================

Section data follows the table. Every section starts at a multiple of 64 bytes (so native code
reads arrays in place, aligned), sections appear in table order without overlap, gaps are zero
bytes, and the last section ends exactly at ``total_size``.

"Zero" always means the all-zero bit pattern: ``-0.0``, NaNs and denormals are non-zeros and
round-trip bit-exactly.

The 2-D *matrix view* of a tensor, used by every matrix codec, is ``[shape[0], prod(shape[1:])]``
(``[1, n]`` for 1-D and ``[1, 1]`` for 0-D tensors): ``[K, N]`` for a MatMul weight and
``[M, C/group * kH * kW]`` for a Conv weight.
"""

from __future__ import annotations

import enum
import functools
import math
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAGIC = b"LSCB"
VERSION = 1
ALIGNMENT = 64
MAX_NDIM = 8
FIXED_HEADER = struct.Struct("<4sHBBQIBBBBQfI")
assert FIXED_HEADER.size == 40
CRC_START = 20
SECTION_ENTRY = struct.Struct("<QQ")
MAX_EXTENT = 2**62
"""The product of a shape's non-zero dims, times the item size, is below this: the element count,
the byte count and both sides of the matrix view then fit in int64 even when some dim is 0."""


class BlobFormatError(ValueError):
    """A blob is malformed: truncated, corrupted, or inconsistent with its own header."""


class ValueDType(enum.IntEnum):
    """Element type of the stored values. The docstring of each member is its byte layout."""

    FLOAT32 = 1
    """IEEE-754 binary32, stored as its 4-byte little-endian bit pattern."""
    FLOAT16 = 2
    """IEEE-754 binary16, stored as its 2-byte little-endian bit pattern."""
    INT8 = 3
    """Signed 8-bit integer q; the real value is ``scale * q`` with the header's f32 scale."""

    @property
    def numpy(self) -> np.dtype:
        return np.dtype({1: np.float32, 2: np.float16, 3: np.int8}[self.value])

    @property
    def bits_dtype(self) -> np.dtype:
        """Unsigned integer dtype of the same width, used to handle bit patterns."""
        return np.dtype({1: np.uint32, 2: np.uint16, 3: np.uint8}[self.value]).newbyteorder("<")

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @classmethod
    def from_numpy(cls, dtype: np.dtype) -> ValueDType:
        table = {np.dtype(np.float32): cls.FLOAT32, np.dtype(np.float16): cls.FLOAT16,
                 np.dtype(np.int8): cls.INT8}
        try:
            return table[np.dtype(dtype)]
        except KeyError:
            raise ValueError(
                f"unsupported weight dtype {np.dtype(dtype)}; expected float32, float16 or int8"
            ) from None


@dataclass(frozen=True)
class Header:
    """The parsed fixed header, dims and params of a blob."""

    codec_id: int
    dtype: ValueDType
    shape: tuple[int, ...]
    params: tuple[int, ...]
    nnz: int
    scale: float
    total_size: int

    @property
    def numel(self) -> int:
        return shape_numel(self.shape)

    @property
    def matrix_shape(self) -> tuple[int, int]:
        return matrix_shape(self.shape)


@dataclass(frozen=True)
class BlobView:
    """A validated blob container: its header and zero-copy views of its sections."""

    header: Header
    sections: tuple[memoryview, ...]
    header_bytes: int
    """Bytes before the first section: fixed header, dims, params, section table, padding."""

    def section_array(self, index: int, dtype: np.dtype | type, name: str) -> np.ndarray:
        """Section ``index`` as a read-only array of little-endian ``dtype``."""
        dt = np.dtype(dtype).newbyteorder("<")
        data = self.sections[index]
        if len(data) % dt.itemsize:
            raise BlobFormatError(
                f"{name} section has {len(data)} bytes, not a multiple of {dt.itemsize}"
            )
        return np.frombuffer(data, dtype=dt)


def bit_patterns(array: np.ndarray) -> np.ndarray:
    """The elements of ``array`` (float32, float16 or int8) as a flat array of their little-endian
    bit patterns, the representation in which a zero is an all-zero pattern."""
    dtype = ValueDType.from_numpy(array.dtype)
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return little.reshape(-1).view(dtype.bits_dtype)


def shape_numel(shape: Sequence[int]) -> int:
    """The element count of a shape (exact: Python integers never wrap)."""
    return math.prod(int(d) for d in shape)


def matrix_shape(shape: Sequence[int]) -> tuple[int, int]:
    """The 2-D matrix view ``[shape[0], prod(shape[1:])]`` of a tensor shape."""
    if len(shape) == 0:
        return (1, 1)
    if len(shape) == 1:
        return (1, int(shape[0]))
    return (int(shape[0]), shape_numel(shape[1:]))


@functools.cache
def memory_budget() -> int:
    """Bytes one decoded tensor may take: half of the physical memory, as the native library
    allows one execution layout (``LSC_ORT_MEMORY_BUDGET_MB`` overrides both)."""
    override = os.environ.get("LSC_ORT_MEMORY_BUDGET_MB", "")
    if override.isdigit() and 0 < int(override) < 2**40:
        return int(override) << 20
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        physical = 1 << 36
    return physical // 2


def align(offset: int) -> int:
    return (offset + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def pack_blob(
    *,
    codec_id: int,
    dtype: ValueDType,
    shape: Sequence[int],
    params: Sequence[int],
    sections: Sequence[bytes | np.ndarray],
    nnz: int,
    scale: float = 1.0,
) -> bytes:
    """Assemble a version-1 blob from its parts (see the module docstring for the layout)."""
    if len(shape) > MAX_NDIM:
        raise ValueError(f"tensors of rank {len(shape)} are not supported (at most {MAX_NDIM})")
    payloads = [
        np.ascontiguousarray(s).view(np.uint8).reshape(-1) if isinstance(s, np.ndarray)
        else np.frombuffer(s, dtype=np.uint8)
        for s in sections
    ]
    table_start = FIXED_HEADER.size + 8 * len(shape) + 8 * len(params)
    offset = align(table_start + SECTION_ENTRY.size * len(payloads))
    entries = []
    for p in payloads:
        entries.append((offset, p.size))
        offset = align(offset + p.size)
    total = entries[-1][0] + entries[-1][1] if entries else table_start
    out = np.zeros(total, dtype=np.uint8)
    head = bytearray()
    head += FIXED_HEADER.pack(MAGIC, VERSION, codec_id, int(dtype), total, 0, len(shape),
                              len(params), len(payloads), 0, nnz, scale, 0)
    head += struct.pack(f"<{len(shape)}Q", *shape)
    head += struct.pack(f"<{len(params)}q", *params)
    for entry in entries:
        head += SECTION_ENTRY.pack(*entry)
    out[: len(head)] = np.frombuffer(bytes(head), dtype=np.uint8)
    for (off, size), p in zip(entries, payloads, strict=True):
        out[off : off + size] = p
    crc = zlib.crc32(out.data[CRC_START:])
    out[16:20] = np.frombuffer(struct.pack("<I", crc), dtype=np.uint8)
    return out.tobytes()


def parse_blob(blob: bytes | bytearray | memoryview | np.ndarray) -> BlobView:
    """Parse and validate the container of ``blob``; raise :class:`BlobFormatError` if malformed.

    Checks the magic, version, declared size against the actual length, the CRC, the header
    fields and the section table. Codec-specific content is checked by the codec.
    """
    if isinstance(blob, np.ndarray):
        if blob.dtype != np.uint8 or blob.ndim != 1:
            raise BlobFormatError(f"a blob array must be 1-D uint8, got {blob.ndim}-D {blob.dtype}")
        data = np.ascontiguousarray(blob).data.cast("B")
    else:
        data = memoryview(blob).cast("B")
    n = len(data)
    if n < FIXED_HEADER.size:
        raise BlobFormatError(
            f"blob is truncated: {n} bytes, shorter than the {FIXED_HEADER.size}-byte header"
        )
    (magic, version, codec_id, dtype_code, total, crc, ndim, nparams, nsections, flags, nnz,
     scale, reserved) = FIXED_HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise BlobFormatError(f"bad magic {bytes(magic)!r}, expected {MAGIC!r}: not an lsc-ort blob")
    if version != VERSION:
        raise BlobFormatError(
            f"unsupported blob format version {version}; this build reads version {VERSION}"
        )
    if total != n:
        kind = "truncated" if n < total else "has trailing bytes"
        raise BlobFormatError(f"blob is {kind}: header declares {total} bytes, got {n}")
    actual_crc = zlib.crc32(data[CRC_START:])
    if actual_crc != crc:
        raise BlobFormatError(
            f"checksum mismatch: stored CRC32 {crc:#010x}, computed {actual_crc:#010x} (corrupted)"
        )
    try:
        dtype = ValueDType(dtype_code)
    except ValueError:
        raise BlobFormatError(f"unknown value dtype code {dtype_code}") from None
    if ndim > MAX_NDIM:
        raise BlobFormatError(f"ndim {ndim} exceeds the maximum {MAX_NDIM}")
    if flags != 0 or reserved != 0:
        raise BlobFormatError(f"reserved header fields must be 0 (flags={flags}, reserved={reserved})")
    table_start = FIXED_HEADER.size + 8 * ndim + 8 * nparams
    header_end = table_start + SECTION_ENTRY.size * nsections
    if header_end > n:
        raise BlobFormatError(f"header and section table need {header_end} bytes, blob has {n}")
    shape = struct.unpack_from(f"<{ndim}Q", data, FIXED_HEADER.size)
    params = struct.unpack_from(f"<{nparams}q", data, FIXED_HEADER.size + 8 * ndim)
    if shape_numel([d for d in shape if d]) * dtype.itemsize >= MAX_EXTENT:
        raise BlobFormatError(
            f"shape {list(shape)} has too many elements: its non-zero dims times the item size must be below 2^62"
        )
    numel = shape_numel(shape)
    if nnz > numel:
        raise BlobFormatError(f"nnz {nnz} exceeds the element count {numel} of shape {list(shape)}")
    if dtype == ValueDType.INT8:
        if not np.isfinite(scale) or scale == 0:
            raise BlobFormatError(f"int8 scale must be finite and non-zero, got {scale}")
    elif scale != 1.0:
        raise BlobFormatError(f"scale must be 1.0 for {dtype.name.lower()} values, got {scale}")
    sections = []
    previous_end = header_end
    for i in range(nsections):
        off, size = SECTION_ENTRY.unpack_from(data, table_start + SECTION_ENTRY.size * i)
        if off % ALIGNMENT:
            raise BlobFormatError(f"section {i} offset {off} is not {ALIGNMENT}-byte aligned")
        if off < previous_end:
            raise BlobFormatError(
                f"section {i} offset {off} overlaps the header or previous section (ends at {previous_end})"
            )
        if off + size > n:
            raise BlobFormatError(f"section {i} [{off}, {off + size}) runs past the blob end {n}")
        sections.append(data[off : off + size])
        previous_end = off + size
    if previous_end != n:
        raise BlobFormatError(f"blob has {n - previous_end} unaccounted bytes after the last section")
    header = Header(codec_id=codec_id, dtype=dtype, shape=tuple(shape), params=tuple(params),
                    nnz=nnz, scale=float(scale), total_size=total)
    first = SECTION_ENTRY.unpack_from(data, table_start)[0] if nsections else header_end
    return BlobView(header=header, sections=tuple(sections), header_bytes=first)
