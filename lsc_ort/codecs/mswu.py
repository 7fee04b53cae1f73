"""``mswu``: micro-structured weight unification and pruning (Lin et al., arXiv 2106.08301).

The matrix view ``[R, C]`` is cut into ``block_rows x block_cols`` blocks, numbered row-major
over the ``nbr x nbc`` grid; an edge block holds only its elements inside the matrix (its
*valid* positions). Every block is one of:

* *pruned*: every element is zero (all-zero bit pattern);
* *unified*: every element has the same magnitude (its bit pattern without the sign bit; for
  int8 ``|q|`` with ``q != -128``): stored as one magnitude and one sign bit per element;
* *free*: anything else, stored element by element.

Any tensor encodes losslessly: a block that is not exactly unified is free.

Params: ``block_rows``, ``block_cols`` (ranges as ``bsr``), ``free_coding`` (0: free blocks are
stored whole; 1: an element mask and the non-zeros of the free blocks).

Sections (``bsize = block_rows * block_cols``, bit streams LSB first, padding bits zero):
``block_mask``    ``ceil(nbr * nbc / 8)`` bytes; bit ``b`` set when block ``b`` is not pruned.
``unified_mask``  ``ceil(nkept / 8)`` bytes; bit ``i`` set when the ``i``-th kept block is
                  unified (the others are free).
``magnitudes``    one value per unified block, in block order; its top bit must be 0.
``signs``         ``bsize`` bits per unified block (row-major in the block); a set bit makes the
                  element negative. Bits of positions outside the matrix must be 0.
``free_mask``     ``free_coding = 1``: ``bsize`` bits per free block marking its non-zeros
                  (positions outside the matrix 0); ``free_coding = 0``: empty.
``free_values``   ``free_coding = 0``: all ``bsize`` elements of every free block (zero outside
                  the matrix); ``free_coding = 1``: the elements marked in ``free_mask``.

A unified element is ``magnitude | sign << (bits - 1)`` for floats (so ``-0.0``, NaN payloads and
infinities round-trip), ``-magnitude`` or ``magnitude`` for int8.

``block="auto"`` tries a few shapes (``1xk``, ``kx1``, ``2x2``, ``4x4``, whole convolution
kernels) and both free codings, and keeps the smallest blob.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lsc_ort.codecs.base import Codec, Encoded, WeightTensor, reject_unknown
from lsc_ort.codecs.bits import pack_mask, unpack_mask
from lsc_ort.codecs.blocks import block_grid, blocks_of, check_block, fit_block, read_block
from lsc_ort.format import BlobFormatError, BlobView, ValueDType, align

AUTO_BLOCKS = ((1, 2), (1, 4), (1, 8), (1, 16), (2, 1), (4, 1), (8, 1), (16, 1), (2, 2), (4, 4))
"""Block shapes ``block="auto"`` sizes, plus one Conv kernel ``(1, kH * kW)`` for rank >= 3."""
FALLBACK_BLOCKS = ((1, 4), (4, 1))
"""Sized instead when no two neighbouring elements share a non-zero magnitude (nothing unifies)."""


@dataclass(frozen=True)
class _Structure:
    """The block labels of one block shape, and the section sizes they imply."""

    block: tuple[int, int]
    kept: np.ndarray
    """bool ``[nblocks]``: not pruned."""
    unified: np.ndarray
    """bool ``[nblocks]``: unified (implies kept)."""
    free_nonzeros: int

    def sizes(self, coding: int, itemsize: int) -> tuple[int, ...]:
        bsize = self.block[0] * self.block[1]
        nkept = int(np.count_nonzero(self.kept))
        nunified = int(np.count_nonzero(self.unified))
        nfree = nkept - nunified
        free = ((0, nfree * bsize * itemsize) if coding == 0
                else (-(-nfree * bsize // 8), self.free_nonzeros * itemsize))
        return (-(-self.kept.size // 8), -(-nkept // 8), nunified * itemsize, -(-nunified * bsize // 8), *free)


def _blob_bytes(sizes: tuple[int, ...]) -> int:
    return sum(align(s) for s in sizes[:-1]) + sizes[-1]


def _magnitudes(weight: WeightTensor) -> tuple[np.ndarray, np.ndarray | None]:
    """Magnitude of every element, and for int8 where it cannot be unified (``q = -128``)."""
    if weight.dtype == ValueDType.INT8:
        q = weight.bits.view(np.int8).astype(np.int16)
        return np.abs(q).astype(np.uint8), q == -128
    top = weight.bits.dtype.type(1 << (8 * weight.dtype.itemsize - 1))
    return weight.bits & ~top, None


def _structure(weight: WeightTensor, block: tuple[int, int], magnitude: np.ndarray,
               poison: np.ndarray | None) -> _Structure:
    rows, cols = weight.matrix_shape
    br, bc = block
    nbr, nbc = block_grid(rows, cols, block)
    if rows * cols == 0:
        empty = np.zeros(nbr * nbc, dtype=bool)
        return _Structure(block, empty, empty, 0)
    pad = ((0, nbr * br - rows), (0, nbc * bc - cols))

    def matrix(flat: np.ndarray, mode: str) -> np.ndarray:
        out = flat.reshape(rows, cols)
        if pad[0][1] or pad[1][1]:
            out = np.pad(out, pad, mode=mode)  # type: ignore[call-overload]
        return out

    # Reduce along each row of a block first (the contiguous axis), then across its rows.
    nonzero = matrix((weight.bits != 0).view(np.uint8), "constant").reshape(nbr * br, nbc, bc)
    nonzero = nonzero.sum(axis=2, dtype=np.int64).reshape(nbr, br, nbc).sum(axis=1).reshape(-1)
    kept = nonzero > 0
    mags = matrix(magnitude, "edge").reshape(nbr * br, nbc, bc)  # edge replication keeps unified blocks unified
    same = (mags == mags[:, :, :1]).all(axis=2).reshape(nbr, br, nbc)
    heads = mags[:, :, 0].reshape(nbr, br, nbc)
    same = (same.all(axis=1) & (heads == heads[:, :1, :]).all(axis=1)).reshape(-1)
    if poison is not None:
        same &= ~matrix(poison, "constant").reshape(nbr, br, nbc, bc).any(axis=(1, 3)).reshape(-1)
    unified = kept & same
    return _Structure(block, kept, unified, int(nonzero[kept & ~unified].sum()))


def _unified_pairs(weight: WeightTensor, magnitude: np.ndarray) -> tuple[int, int]:
    """Neighbouring non-zeros with the same magnitude, ``(across rows, down columns)``. A unified
    block of ``n`` elements holds at least ``n - 1`` of them; a ``1 x k`` block only across, a
    ``k x 1`` block only down, a 2-D block both."""
    rows, cols = weight.matrix_shape
    mags = magnitude.reshape(rows, cols)
    nonzero = (weight.bits != 0).reshape(rows, cols)
    across = (mags[:, 1:] == mags[:, :-1]) & nonzero[:, 1:]
    down = (mags[1:] == mags[:-1]) & nonzero[1:]
    return int(np.count_nonzero(across)), int(np.count_nonzero(down))


def _valid(block_ids: np.ndarray, rows: int, cols: int, block: tuple[int, int], nbc: int) -> np.ndarray:
    """bool ``[len(block_ids), bsize]``: the positions of each block that lie inside the matrix."""
    br, bc = block
    if block_ids.size == 0:  # no data: nothing the size of a block (which may be huge) to build
        return np.zeros((0, br * bc), dtype=bool)
    row_limit = np.minimum(br, rows - block_ids // nbc * br)
    col_limit = np.minimum(bc, cols - block_ids % nbc * bc)
    offsets = np.arange(br * bc)
    return (offsets // bc < row_limit[:, None]) & (offsets % bc < col_limit[:, None])


def _positions(block_ids: np.ndarray, cols: int, block: tuple[int, int], nbc: int) -> np.ndarray:
    """Flat C-order index of every position of each block (outside the matrix: garbage)."""
    br, bc = block
    if block_ids.size == 0:
        return np.zeros((0, br * bc), dtype=np.int64)
    offsets = np.arange(br * bc)
    r = (block_ids // nbc * br)[:, None] + offsets // bc
    c = (block_ids % nbc * bc)[:, None] + offsets % bc
    return r * cols + c


def unified_fraction(weight: WeightTensor, needed: float = 0.0) -> float:
    """The largest fraction of the weights, over the automatic block shapes, that unification
    makes redundant: every element of a unified block but the one value it stores.

    When a cheap upper bound is already below ``needed``, that bound is returned instead.
    """
    magnitude, poison = _magnitudes(weight)
    bound = sum(_unified_pairs(weight, magnitude)) / weight.numel if weight.numel else 0.0
    if bound == 0.0 or bound < needed:
        return bound
    rows, cols = weight.matrix_shape
    best = 0
    for shape in sorted({fit_block(shape, rows, cols) for shape in AUTO_BLOCKS}):
        structure = _structure(weight, shape, magnitude, poison)
        unified = int(np.count_nonzero(structure.unified))
        best = max(best, unified * (shape[0] * shape[1] - 1))
    return min(1.0, best / weight.numel)


class MswuCodec(Codec):
    name = "mswu"
    codec_id = 7
    param_names = ("block_rows", "block_cols", "free_coding")
    section_names = ("block_mask", "unified_mask", "magnitudes", "signs", "free_mask", "free_values")
    description = "micro-structured unification: pruned / unified (one value + signs) / free blocks"

    def encode(self, weight: WeightTensor, *, block: tuple[int, int] | str = "auto",
               free_coding: int | str = "auto", **options: Any) -> Encoded:
        """Encode with MSWU blocks.

        Args:
            block: block shape ``(rows, cols)`` in the matrix view (clamped), or ``"auto"``.
            free_coding: 0 (free blocks whole), 1 (element mask + non-zeros) or ``"auto"``.
        """
        reject_unknown(self.name, options)
        if free_coding not in ("auto", 0, 1):
            raise ValueError(f"mswu free_coding must be 0, 1 or 'auto', got {free_coding!r}")
        rows, cols = weight.matrix_shape
        magnitude, poison = _magnitudes(weight)
        if block == "auto":
            shapes = list(AUTO_BLOCKS)
            if len(weight.shape) >= 3:
                shapes.append((1, int(np.prod(weight.shape[2:], dtype=np.int64))))
            across, down = _unified_pairs(weight, magnitude) if weight.numel else (0, 0)
            if not across and not down:
                shapes = list(FALLBACK_BLOCKS)
            else:  # a shape that cannot hold a unified block is no better than the fallback ones
                shapes = [s for s in shapes if (across or s[1] == 1) and (down or s[0] == 1)]
                shapes += list(FALLBACK_BLOCKS)
            candidates = sorted({fit_block(shape, rows, cols) for shape in shapes})
        else:
            candidates = [fit_block(check_block(block, "mswu"), rows, cols)]
        codings = (0, 1) if free_coding == "auto" else (int(free_coding),)
        best: tuple[int, _Structure, int] | None = None
        for shape in candidates:
            structure = _structure(weight, shape, magnitude, poison)
            for coding in codings:
                size = _blob_bytes(structure.sizes(coding, weight.dtype.itemsize))
                if best is None or size < best[0]:
                    best = (size, structure, coding)
        assert best is not None
        return self._encode(weight, best[1], best[2], magnitude)

    def _encode(self, weight: WeightTensor, structure: _Structure, coding: int, magnitude: np.ndarray) -> Encoded:
        rows, cols = weight.matrix_shape
        block = structure.block
        _, nbc = block_grid(rows, cols, block)
        grid = blocks_of(weight, block)
        bsize = block[0] * block[1]
        blocks = grid.reshape(-1, bsize)
        kept_ids = np.flatnonzero(structure.kept)
        unified_ids = np.flatnonzero(structure.unified)
        free_ids = np.flatnonzero(structure.kept & ~structure.unified)
        top = 8 * weight.dtype.itemsize - 1
        unified_blocks = blocks[unified_ids]
        if weight.dtype == ValueDType.INT8:
            signs = unified_blocks.view(np.int8) < 0
        else:
            signs = (unified_blocks >> top).astype(bool)
        signs &= _valid(unified_ids, rows, cols, block, nbc)
        first = _positions(unified_ids, cols, block, nbc)[:, 0]
        magnitudes = magnitude[first]
        free_blocks = blocks[free_ids]
        if coding == 0:
            free_mask, free_values = np.zeros(0, np.uint8), free_blocks.reshape(-1)
        else:
            nonzero = free_blocks != 0
            free_mask, free_values = pack_mask(nonzero), free_blocks[nonzero]
        sections = (pack_mask(structure.kept), pack_mask(structure.unified[kept_ids]), magnitudes,
                    pack_mask(signs), free_mask, free_values)
        return Encoded(params=(*block, coding), sections=sections)

    def _read(self, view: BlobView) -> dict[str, Any]:
        """Validated params and masks (everything but the values)."""
        self.check_layout(view)
        rows, cols, br, bc = read_block(self, view)
        coding = self.param(view, "free_coding", 0, 1)
        nbr, nbc = block_grid(rows, cols, (br, bc))
        kept = unpack_mask(self.section(view, "block_mask"), nbr * nbc, f"{self.name}: block_mask")
        kept_ids = np.flatnonzero(kept)
        unified_of_kept = unpack_mask(self.section(view, "unified_mask"), kept_ids.size, f"{self.name}: unified_mask")
        return dict(rows=rows, cols=cols, block=(br, bc), coding=coding, nbc=nbc, nblocks=nbr * nbc,
                    unified_ids=kept_ids[unified_of_kept], free_ids=kept_ids[~unified_of_kept])

    def decode(self, view: BlobView) -> np.ndarray:
        layout = self._read(view)
        out = self.zeros(view)  # the memory budget first: every array below follows the data
        rows, cols, block, nbc = layout["rows"], layout["cols"], layout["block"], layout["nbc"]
        unified_ids, free_ids = layout["unified_ids"], layout["free_ids"]
        dtype = view.header.dtype
        bsize = block[0] * block[1]
        top = 8 * dtype.itemsize - 1
        magnitudes = self.section(view, "magnitudes", dtype.bits_dtype, unified_ids.size)
        if (magnitudes >> top).any():
            raise BlobFormatError(f"{self.name}: a magnitude has its top (sign) bit set")
        signs = unpack_mask(self.section(view, "signs"), unified_ids.size * bsize, f"{self.name}: signs")
        signs = signs.reshape(unified_ids.size, bsize)
        valid = _valid(unified_ids, rows, cols, block, nbc)
        if (signs & ~valid).any():
            raise BlobFormatError(f"{self.name}: signs has a bit set outside the matrix (edge block padding)")
        mags = magnitudes[:, None]
        if dtype == ValueDType.INT8:
            negative = (-magnitudes.view(np.int8)).view(np.uint8)[:, None]
            values = np.where(signs, negative, mags)
        else:
            values = mags | (signs.astype(dtype.bits_dtype) << dtype.bits_dtype.type(top))
        out[_positions(unified_ids, cols, block, nbc)[valid]] = values[valid]

        free_mask_data = self.section(view, "free_mask")
        if layout["coding"] == 0:
            if free_mask_data.size:
                raise BlobFormatError(f"{self.name}: free_mask must be empty when free_coding is 0")
            free = self.values_of(view, free_ids.size * bsize).reshape(free_ids.size, bsize)
            free_valid = _valid(free_ids, rows, cols, block, nbc)
            if (free[~free_valid] != 0).any():
                raise BlobFormatError(f"{self.name}: a free value lies outside the matrix (edge block padding)")
            out[_positions(free_ids, cols, block, nbc)[free_valid]] = free[free_valid]
        else:
            mask = unpack_mask(free_mask_data, free_ids.size * bsize, f"{self.name}: free_mask")
            mask = mask.reshape(free_ids.size, bsize)
            if (mask & ~_valid(free_ids, rows, cols, block, nbc)).any():
                raise BlobFormatError(f"{self.name}: free_mask has a bit set outside the matrix (edge block padding)")
            free = self.values_of(view, int(np.count_nonzero(mask)))
            out[_positions(free_ids, cols, block, nbc)[mask]] = free
        return out

    def values_of(self, view: BlobView, count: int) -> np.ndarray:
        return self.section(view, "free_values", view.header.dtype.bits_dtype, count)

    def describe(self, view: BlobView) -> dict[str, Any]:
        layout = self._read(view)
        block, unified_ids, free_ids = layout["block"], layout["unified_ids"], layout["free_ids"]
        if layout["coding"] == 1:
            mask = unpack_mask(self.section(view, "free_mask"), free_ids.size * block[0] * block[1],
                               f"{self.name}: free_mask")
            free_nonzeros = int(np.count_nonzero(mask))
        else:
            free_nonzeros = int(np.count_nonzero(self.values_of(view, free_ids.size * block[0] * block[1])))
        multiplies = free_nonzeros + int(unified_ids.size)
        numel = view.header.numel
        return {
            "mswu_block": list(block),
            "pruned_blocks": layout["nblocks"] - int(unified_ids.size + free_ids.size),
            "unified_blocks": int(unified_ids.size),
            "free_blocks": int(free_ids.size),
            "free_nonzeros": free_nonzeros,
            "multiplies": multiplies,
            "multiplies_saved": 1.0 - multiplies / numel if numel else 0.0,
        }
