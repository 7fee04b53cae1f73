"""``lsc``: layerwise sparse coding (Liu et al., AAAI 2020): a block layer, then SRI coding.

Block layer: the matrix view ``[R, C]`` is cut into ``block_rows x block_cols`` blocks (edge
blocks zero-padded), numbered row-major over the ``nbr x nbc`` block grid. One bit per block
marks the blocks holding a non-zero; the others are dropped. The non-zero blocks, each
flattened row-major, are concatenated in block order into one vector.

Coding layer: the positions of the non-zeros within that vector are coded with the signed
relative index (:mod:`lsc_ort.codecs.sri`) of ``code_bits`` bits split at ``split``. With
``code_bits = 0`` there is no coding layer and every element of a non-zero block is stored
(``block = (1, 1)`` is then the bitmap format).

Chunks: block rows are grouped ``chunk_block_rows`` at a time. Each chunk starts a fresh SRI
stream (its first code is relative to the chunk's first element), and a chunk table stores where
each chunk's codes and values begin, so kernels decode chunks in parallel.

Params: ``block_rows``, ``block_cols``, ``code_bits`` (0..16), ``split`` (0 when ``code_bits``
is 0, else 1..2**code_bits - 1), ``chunk_block_rows``.

The *position layer* (block layer, chunks and SRI codes: every param and every section but
``values``) says which elements are stored, the *slots*; :func:`choose_layer`,
:func:`encode_layer` and :func:`decode_layer` expose it to other codecs (``f2f`` codes the slots'
values with an XOR network instead of storing them raw).

Sections:
``block_mask``  ``ceil(nbr * nbc / 8)`` bytes, bit ``i`` (LSB first) set when block ``i`` is kept.
``chunks``      u64 ``[nchunks + 1, 2]``: (code index, value index) where chunk ``k`` starts;
                the last row holds the totals. ``nchunks = ceil(nbr / chunk_block_rows)``.
``codes``       the SRI codes of all chunks, ``code_bits`` wide, packed LSB first.
``values``      the non-zeros in vector order (with ``code_bits = 0``: every element of every
                kept block).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lsc_ort.codecs import sri
from lsc_ort.codecs.base import Codec, Encoded, WeightTensor, reject_unknown
from lsc_ort.codecs.bits import pack_codes, pack_mask, packed_size, unpack_codes, unpack_mask
from lsc_ort.codecs.blocks import block_grid, blocks_of, check_block, fit_block, read_block
from lsc_ort.entropy import binary_entropy
from lsc_ort.format import BlobFormatError, BlobView, align

CHUNK_ELEMENTS = 1 << 16
"""Target number of matrix elements per chunk when ``chunk_block_rows`` is automatic."""
EXACT_CANDIDATES = 3
"""Block shapes sized exactly after ranking all candidates by an estimate."""
SEARCH_SAMPLE = 1 << 18
"""Above this many elements, parameters are chosen on a sample of row bands."""
BAND_ROWS = 64
WHOLE_MATRIX_BLOCK_LIMIT = 1 << 16
"""Matrices up to this many elements may also use one block for the whole matrix."""
AUTO_BLOCK_COLS = (2, 4, 8, 16, 32, 64)
AUTO_2D_BLOCKS = ((2, 2), (4, 4), (8, 8), (4, 1), (16, 1))


@dataclass
class _Layout:
    """The block layer of one block shape, and what the coding layer needs from it."""

    block: tuple[int, int]
    grid: tuple[int, int]
    chunk_block_rows: int
    block_mask: np.ndarray
    chunk_blocks: np.ndarray
    """Kept blocks in each chunk."""
    gaps: np.ndarray
    """Zeros before each non-zero within its chunk's vector, in vector order."""
    chunk_of: np.ndarray
    """Chunk of each non-zero, in vector order."""
    order: np.ndarray | None
    """Permutation from row-major non-zero order to vector order (``None``: identity)."""

    @property
    def nchunks(self) -> int:
        return int(self.chunk_blocks.size)

    @property
    def kept_blocks(self) -> int:
        return int(self.chunk_blocks.sum())


def _chunk_block_rows(requested: int | None, block: tuple[int, int], grid: tuple[int, int]) -> int:
    """Block rows per chunk: as requested, or about ``CHUNK_ELEMENTS`` elements; at most all."""
    if requested is None:
        requested = CHUNK_ELEMENTS // (block[0] * block[1] * max(grid[1], 1))
    return max(1, min(requested, grid[0]))


def _coordinates(weight: WeightTensor) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each non-zero in the matrix view (int32 when that suffices)."""
    cols = weight.matrix_shape[1]
    nz = weight.nonzero
    if weight.numel < 2**31:
        nz = nz.astype(np.int32)
    r, c = np.divmod(nz, max(cols, 1))
    return r, c


def _layout(weight: WeightTensor, block: tuple[int, int], chunk_block_rows: int | None,
            coordinates: tuple[np.ndarray, np.ndarray] | None = None) -> _Layout:
    rows, cols = weight.matrix_shape
    br, bc = block
    nbr, nbc = block_grid(rows, cols, block)
    cbr = _chunk_block_rows(chunk_block_rows, block, (nbr, nbc))
    r, c = coordinates if coordinates is not None else _coordinates(weight)
    small = (nbr * nbc + 1) * br * bc < 2**31
    index = np.int32 if small else np.int64
    block_row = r // br if br > 1 else r
    block_col = c // bc
    block_id = block_row.astype(index) * nbc + block_col
    kept = np.zeros(nbr * nbc, dtype=bool)
    kept[block_id] = True
    kept_before = np.zeros(kept.size + 1, dtype=index)
    np.cumsum(kept, dtype=index, out=kept_before[1:])
    bsize = br * bc
    in_block = (c - block_col * bc) if br == 1 else (r - block_row * br) * bc + (c - block_col * bc)
    position = kept_before[block_id] * bsize + in_block.astype(index)
    order = None
    if br > 1:
        order = np.argsort(position, kind="stable")
        position = position[order]
        block_row = block_row[order]
    nchunks = -(-nbr // cbr)
    chunk_first_block = kept_before[np.minimum(np.arange(nchunks + 1) * cbr * nbc, kept.size)]
    chunk_of = block_row // cbr if cbr > 1 else block_row
    previous = np.empty_like(position)
    previous[:1] = -1
    previous[1:] = position[:-1]
    first_in_chunk = np.ones(position.size, dtype=bool)
    first_in_chunk[1:] = chunk_of[1:] != chunk_of[:-1]
    previous[first_in_chunk] = chunk_first_block[chunk_of[first_in_chunk]] * bsize - 1
    return _Layout(block=block, grid=(nbr, nbc), chunk_block_rows=cbr, block_mask=kept,
                   chunk_blocks=np.diff(chunk_first_block).astype(np.int64),
                   gaps=(position - previous - 1).astype(np.int64), chunk_of=chunk_of, order=order)


def _kept_blocks(weight: WeightTensor, block: tuple[int, int],
                 coordinates: tuple[np.ndarray, np.ndarray]) -> int:
    """Number of blocks of shape ``block`` holding a non-zero."""
    rows, cols = weight.matrix_shape
    r, c = coordinates
    if block == (1, 1):
        return weight.nnz
    nbr, nbc = block_grid(rows, cols, block)
    kept = np.zeros(nbr * nbc, dtype=bool)
    kept[(r // block[0]).astype(np.int64) * nbc + c // block[1]] = True
    return int(np.count_nonzero(kept))


def _search_sample(weight: WeightTensor) -> WeightTensor:
    """Evenly spaced bands of rows of a large tensor, on which the parameters are chosen.

    Bands are a multiple of every candidate block height tall, so block statistics are those of
    the full matrix; tensors up to ``SEARCH_SAMPLE`` elements are searched whole.
    """
    rows, cols = weight.matrix_shape
    band = BAND_ROWS
    if weight.numel <= SEARCH_SAMPLE or rows <= 2 * band or band * cols > SEARCH_SAMPLE:
        return weight
    nbands = max(1, SEARCH_SAMPLE // (band * cols))
    starts = (np.linspace(0, rows // band - 1, nbands).astype(np.int64)) * band
    picked = (starts[:, None] + np.arange(band)[None, :]).reshape(-1)
    bits = weight.bits.reshape(rows, cols)[picked].reshape(-1)
    return WeightTensor(bits=bits, shape=(picked.size, cols), dtype=weight.dtype, scale=weight.scale)


def _blob_bytes(*section_sizes: int) -> int:
    """Bytes from the first section on (the header size is the same for every choice)."""
    total = 0
    for size in section_sizes[:-1]:
        total += align(size) if size else 0
    return total + section_sizes[-1]


def _candidate_blocks(rows: int, cols: int) -> list[tuple[int, int]]:
    shapes = [(1, bc) for bc in AUTO_BLOCK_COLS] + list(AUTO_2D_BLOCKS) + [(1, cols)]
    if rows * cols <= WHOLE_MATRIX_BLOCK_LIMIT:
        shapes.append((rows, cols))
    fitted = {fit_block(shape, rows, cols) for shape in shapes}
    fitted.discard((1, 1))
    return sorted(fitted)


LAYER_PARAMS = ("block_rows", "block_cols", "code_bits", "split", "chunk_block_rows")
"""The position layer's params: the first five of every codec that uses it."""
LAYER_SECTIONS = ("block_mask", "chunks", "codes")
"""The position layer's sections: the first three of every codec that uses it."""

Auto = Literal["auto"]


@dataclass(frozen=True)
class LayerChoice:
    """Parameters of the position layer: block shape, SRI code width and split, chunking."""

    block: tuple[int, int]
    code_bits: int
    split: int
    chunk_block_rows: int | None
    """Block rows per chunk, ``None`` for about ``CHUNK_ELEMENTS`` elements per chunk."""


@dataclass(frozen=True)
class EncodedLayer:
    """The position layer of a tensor: its params and sections, and its slots."""

    params: tuple[int, ...]
    sections: tuple[np.ndarray, np.ndarray, np.ndarray]
    values: np.ndarray
    """The slots' bit patterns, in slot order."""
    positions: np.ndarray | None
    """Flat C-order index of each slot, in slot order; ``None`` for kept blocks stored whole
    (larger than 1x1), whose slots include edge padding."""
    chunk_rows: int
    """Matrix rows per chunk (``chunk_block_rows * block_rows``)."""
    chunk_slots: np.ndarray
    """int64 ``[nchunks + 1]``: the first slot of each chunk, then the total."""


@dataclass(frozen=True)
class DecodedLayer:
    """The validated position layer of a blob: where every slot lies, chunk by chunk."""

    rows: int
    cols: int
    row: np.ndarray
    """Matrix row of each slot, in slot order (in edge padding only when ``whole_blocks``)."""
    col: np.ndarray
    chunk_slots: np.ndarray
    """int64 ``[nchunks + 1]``: the first slot of each chunk, then the total."""
    chunk_rows: int
    whole_blocks: bool
    """No coding layer: every element of every kept block is a slot."""
    block: tuple[int, int]

    @property
    def slots(self) -> int:
        return int(self.chunk_slots[-1])


def check_layer_options(codec: str, block: tuple[int, int] | Auto, code_bits: int | Auto, split: int | Auto,
                        chunk_block_rows: int | Auto) -> tuple[int | None, int | None, int | None]:
    """Validate user-given layer options; returns ``(code_bits, split, chunk_block_rows)``, each
    ``None`` when automatic."""
    cbr = None if chunk_block_rows == "auto" else int(chunk_block_rows)
    if cbr is not None and cbr < 1:
        raise ValueError(f"{codec} chunk_block_rows must be >= 1, got {chunk_block_rows!r}")
    fixed_bits = None if code_bits == "auto" else int(code_bits)
    fixed_split = None if split == "auto" else int(split)
    if fixed_bits is not None and not 0 <= fixed_bits <= sri.MAX_WIDTH:
        raise ValueError(f"{codec} code_bits must be in [0, {sri.MAX_WIDTH}], got {code_bits!r}")
    if fixed_split is not None:
        if fixed_bits is None:
            raise ValueError(f"{codec} split needs an explicit code_bits")
        limit = (1 << fixed_bits) - 1
        if (fixed_bits == 0 and fixed_split != 0) or (fixed_bits > 0 and not 1 <= fixed_split <= limit):
            raise ValueError(f"{codec} split must be in [1, {limit}] for {fixed_bits}-bit codes, got {split!r}")
    if block != "auto":
        check_block(block, codec)
    return fixed_bits, fixed_split, cbr


def choose_layer(weight: WeightTensor, *, block: tuple[int, int] | Auto = "auto", code_bits: int | Auto = "auto",
                 split: int | Auto = "auto", chunk_block_rows: int | Auto = "auto", whole_blocks: bool = True,
                 codec: str = "lsc") -> LayerChoice:
    """The position layer that codes ``weight``'s non-zeros in fewest bytes, values stored raw.

    Every option defaults to ``"auto"``. ``whole_blocks=False`` allows storing kept blocks whole
    (``code_bits=0``) only for 1x1 blocks, so that the slots are exactly the non-zeros.
    """
    rows, cols = weight.matrix_shape
    fixed_bits, fixed_split, cbr = check_layer_options(codec, block, code_bits, split, chunk_block_rows)
    if block == "auto":
        shapes = _candidate_blocks(rows, cols)
        if fixed_bits in (None, 0):
            shapes.insert(0, (1, 1))
        if fixed_bits == 0 and not whole_blocks:
            shapes = [(1, 1)]
    else:
        shapes = [fit_block(check_block(block, codec), rows, cols)]
        if fixed_bits == 0 and not whole_blocks and shapes[0] != (1, 1):
            raise ValueError(f"{codec} code_bits=0 (no coding layer) needs block (1, 1), got {block!r}")
    if len(shapes) == 1 and fixed_bits is not None and (fixed_bits == 0 or fixed_split is not None):
        return LayerChoice(shapes[0], fixed_bits, fixed_split or 0, cbr)
    shape, width, sp = _choose(_search_sample(weight), shapes, fixed_bits, fixed_split, cbr, whole_blocks)
    return LayerChoice(shape, width, sp, cbr)


def encode_layer(weight: WeightTensor, choice: LayerChoice) -> EncodedLayer:
    """The position layer of ``weight`` with the parameters ``choice``."""
    if choice.code_bits == 0:
        return _encode_blocks(weight, choice.block, choice.chunk_block_rows)
    return _encode_layout(weight, _layout(weight, choice.block, choice.chunk_block_rows), choice.code_bits,
                          choice.split)


def _choose(weight: WeightTensor, shapes: list[tuple[int, int]], fixed_bits: int | None, fixed_split: int | None,
            cbr: int | None, whole_blocks: bool) -> tuple[tuple[int, int], int, int]:
    """The (block, code_bits, split) giving the smallest blob for ``weight``.

    Shapes are first ranked by an estimate (block bitmask plus the entropy of the kept vector, or
    the kept blocks stored whole); the ``EXACT_CANDIDATES`` best are then sized exactly.
    """
    rows, cols = weight.matrix_shape
    itemsize = weight.dtype.itemsize
    nnz, nnz_bytes = weight.nnz, weight.nnz * itemsize
    coordinates = _coordinates(weight)
    estimates = []
    for shape in shapes:
        kept = _kept_blocks(weight, shape, coordinates)
        nblocks = int(np.prod(block_grid(rows, cols, shape)))
        stored = kept * shape[0] * shape[1]
        whole = fixed_bits in (None, 0) and (whole_blocks or shape == (1, 1))
        options: list[float] = []
        if whole:
            options.append(stored * itemsize)
        if fixed_bits != 0 and shape != (1, 1):
            options.append(stored * binary_entropy(nnz / stored) / 8 + nnz_bytes if stored else 0)
        if options:
            estimates.append((nblocks / 8 + min(options), shape))
    estimates.sort()
    best: tuple[int, tuple[int, int], int, int] | None = None
    for _, shape in estimates[:EXACT_CANDIDATES]:
        if shape == (1, 1) and fixed_bits in (None, 0):
            # The bitmap regime, priced without building its layout.
            nchunks = -(-rows // _chunk_block_rows(cbr, shape, (rows, cols)))
            choices = [(0, 0, _blob_bytes(packed_size(weight.numel, 1), 16 * (nchunks + 1), 0, nnz_bytes))]
        else:
            layout = _layout(weight, shape, cbr, coordinates)
            mask_bytes = packed_size(layout.block_mask.size, 1)
            table_bytes = 16 * (layout.nchunks + 1)
            choices = []
            if fixed_bits in (None, 0) and whole_blocks:
                stored = layout.kept_blocks * shape[0] * shape[1] * itemsize
                choices.append((0, 0, _blob_bytes(mask_bytes, table_bytes, 0, stored)))
            if fixed_bits != 0:
                width, sp, ncodes = sri.best_parameters(
                    *sri.gap_histogram(layout.gaps), width=fixed_bits, split=fixed_split)
                choices.append((width, sp, _blob_bytes(
                    mask_bytes, table_bytes, packed_size(ncodes, width), nnz_bytes)))
        for width, sp, size in choices:
            if best is None or size < best[0]:
                best = (size, shape, width, sp)
    assert best is not None
    return best[1], best[2], best[3]


def _encode_blocks(weight: WeightTensor, block: tuple[int, int], cbr: int | None) -> EncodedLayer:
    """The layer without a coding layer: the kept blocks are stored whole."""
    rows, cols = weight.matrix_shape
    grid = block_grid(rows, cols, block)
    cbr = _chunk_block_rows(cbr, block, grid)
    nchunks = -(-grid[0] // cbr)
    if block == (1, 1):  # the bitmap regime: the slots are the non-zeros, in C order
        kept = weight.bits != 0
        positions: np.ndarray | None = weight.nonzero
        values = weight.bits[positions]
        kept_per_block_row = np.count_nonzero(kept.reshape(rows, cols), axis=1)
        size = 1
    else:
        blocks = blocks_of(weight, block)
        kept = np.asarray(blocks.any(axis=(2, 3)))
        kept_per_block_row = np.count_nonzero(kept, axis=1)
        values = blocks[kept].reshape(-1)
        positions = None
        size = block[0] * block[1]
    chunk_blocks = (np.add.reduceat(kept_per_block_row, np.arange(nchunks) * cbr) if nchunks
                    else kept_per_block_row)
    chunk_slots = np.zeros(nchunks + 1, dtype=np.int64)
    chunk_slots[1:] = np.cumsum(chunk_blocks) * size
    table = np.zeros((nchunks + 1, 2), dtype="<u8")
    table[:, 1] = chunk_slots
    params = (block[0], block[1], 0, 0, cbr)
    return EncodedLayer(params, (pack_mask(kept), table, np.zeros(0, np.uint8)), values, positions,
                        cbr * block[0], chunk_slots)


def _encode_layout(weight: WeightTensor, layout: _Layout, width: int, split: int) -> EncodedLayer:
    """The layer coding the non-zeros of ``layout`` with ``width``-bit SRI codes split at ``split``."""
    table = np.zeros((layout.nchunks + 1, 2), dtype="<u8")
    positions = weight.nonzero if layout.order is None else weight.nonzero[layout.order]
    skip_codes = (1 << width) - split
    codes_per_nz = sri.skip_counts(layout.gaps, split, skip_codes) + 1
    table[1:, 0] = np.cumsum(np.bincount(layout.chunk_of, weights=codes_per_nz,
                                         minlength=layout.nchunks).astype(np.int64))
    chunk_slots = np.zeros(layout.nchunks + 1, dtype=np.int64)
    chunk_slots[1:] = np.cumsum(np.bincount(layout.chunk_of, minlength=layout.nchunks))
    table[:, 1] = chunk_slots
    codes = pack_codes(sri.encode_gaps(layout.gaps, width, split), width)
    params = (*layout.block, width, split, layout.chunk_block_rows)
    return EncodedLayer(params, (pack_mask(layout.block_mask), table, codes), weight.bits[positions], positions,
                        layout.chunk_block_rows * layout.block[0], chunk_slots)


def read_chunk_table(codec: Codec, view: BlobView, name: str, nchunks: int, what: str) -> np.ndarray:
    """The chunk table section ``name`` (u64 ``[nchunks + 1, 2]``) as int64, checked: it starts at
    (0, 0), is monotone, and every entry is below 2**62. Messages call it ``<what> table``."""
    table = codec.section(view, name, np.uint64, 2 * (nchunks + 1)).reshape(-1, 2)
    if table[0].any():
        raise BlobFormatError(f"{codec.name}: {what} table must start at (0, 0), got {table[0].tolist()}")
    if table.max(initial=0) >= 2**62 or (np.diff(table.astype(np.int64), axis=0) < 0).any():
        raise BlobFormatError(f"{codec.name}: {what} table is not monotone")
    return table.astype(np.int64)


def decode_layer(codec: Codec, view: BlobView) -> DecodedLayer:
    """Read and validate the position layer of a blob (``codec``'s first params and sections)."""
    rows, cols, br, bc = read_block(codec, view)
    width = codec.param(view, "code_bits", 0, sri.MAX_WIDTH)
    split = codec.param(view, "split", 0, (1 << width) - 1)
    if width:
        sri.check_parameters(width, split, codec.name)
    elif split:
        raise BlobFormatError(f"{codec.name}: split must be 0 without a coding layer, got {split}")
    nbr, nbc = block_grid(rows, cols, (br, bc))
    cbr = codec.param(view, "chunk_block_rows", 1, max(nbr, 1))
    nchunks = -(-nbr // cbr)
    bsize = br * bc
    # The chunk table first: its size bounds the number of chunks, and so the work below (a matrix
    # without columns declares chunks without any mask bits to pay for them).
    table = read_chunk_table(codec, view, "chunks", nchunks, "chunk")
    kept = unpack_mask(codec.section(view, "block_mask"), nbr * nbc, f"{codec.name}: block_mask")
    kept_ids = np.flatnonzero(kept)
    chunk_blocks = np.bincount(kept_ids // max(nbc, 1) // cbr, minlength=nchunks)
    chunk_first_block = np.concatenate([[0], np.cumsum(chunk_blocks)]).astype(np.int64)
    ncodes = int(table[-1, 0])
    codes_data = codec.section(view, "codes")

    def layer(row: np.ndarray, col: np.ndarray) -> DecodedLayer:
        return DecodedLayer(rows, cols, row, col, table[:, 1].copy(), cbr * br, width == 0, (br, bc))

    if width == 0:
        if ncodes or codes_data.size:
            raise BlobFormatError(f"{codec.name}: codes present without a coding layer")
        expected = chunk_first_block * bsize
        if not np.array_equal(table[:, 1], expected):
            raise BlobFormatError(
                f"{codec.name}: chunk value offsets {table[:, 1].tolist()[:8]} do not match the "
                f"kept blocks (expected {expected.tolist()[:8]})")
        codec.check_memory(view, 24 * kept_ids.size * bsize)  # the row, column and offset of every slot
        offset = np.arange(bsize if kept_ids.size else 0, dtype=np.int64)
        row = ((kept_ids // nbc) * br)[:, None] + (offset // bc)[None, :]
        col = ((kept_ids % nbc) * bc)[:, None] + (offset % bc)[None, :]
        return layer(row.reshape(-1), col.reshape(-1))

    position, gap_chunk = sri.decode_streams(
        unpack_codes(codes_data, ncodes, width, f"{codec.name}: codes"), table, width, split,
        chunk_blocks * bsize, codec.name)
    vector_index = chunk_first_block[gap_chunk] * bsize + position
    block_rank, offset = np.divmod(vector_index, bsize)
    block_id = kept_ids[block_rank]
    row = (block_id // nbc) * br + offset // bc
    col = (block_id % nbc) * bc + offset % bc
    if ((row >= rows) | (col >= cols)).any():
        raise BlobFormatError(f"{codec.name}: a non-zero lies in the padding of an edge block")
    return layer(row, col)


class LscCodec(Codec):
    name = "lsc"
    codec_id = 5
    param_names = LAYER_PARAMS
    section_names = (*LAYER_SECTIONS, "values")
    description = "layerwise sparse coding: block bitmask + signed relative index"

    def encode(self, weight: WeightTensor, *, block: tuple[int, int] | Auto = "auto", code_bits: int | Auto = "auto",
               split: int | Auto = "auto", chunk_block_rows: int | Auto = "auto", **options: Any) -> Encoded:
        """Encode with LSC. Every option defaults to ``"auto"``: the choice with the smallest blob.

        Args:
            block: block shape ``(rows, cols)`` of the block layer (clamped to the matrix).
            code_bits: SRI code width, 0..16 (0: store kept blocks whole, no coding layer).
            split: first skip code of the SRI code space (see :mod:`lsc_ort.codecs.sri`).
            chunk_block_rows: block rows per independently decodable chunk.
        """
        reject_unknown(self.name, options)
        choice = choose_layer(weight, block=block, code_bits=code_bits, split=split,
                              chunk_block_rows=chunk_block_rows)
        layer = encode_layer(weight, choice)
        return Encoded(params=layer.params, sections=(*layer.sections, layer.values))

    def decode(self, view: BlobView) -> np.ndarray:
        self.check_layout(view)
        out = self.zeros(view)  # the memory budget first
        layer = decode_layer(self, view)
        values = self.values(view, layer.slots)
        inside = (layer.row < layer.rows) & (layer.col < layer.cols)
        if not inside.all():  # kept edge blocks stored whole hold their padding, which must be zero
            if values[~inside].any():
                raise BlobFormatError(f"{self.name}: a non-zero value lies in the padding of an edge block")
            values = values[inside]
        out[layer.row[inside] * layer.cols + layer.col[inside]] = values
        return out
