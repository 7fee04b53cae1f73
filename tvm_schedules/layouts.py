"""Execution layouts of LSC weights for the TVM kernels, derived at import time from a blob.

The blob is decoded only by the project's one Python reader (:func:`lsc_ort.decode`,
:func:`lsc_ort.inspect`); this module turns the decoded matrix into the layout the kernels read:

**Sorted column lists in groups of 16** (a SELL-16-σ layout). The weight is seen as ``[K, N]``:
``N`` output columns (MatMul columns, Conv output channels), each a list of (row, value) pairs
for the rows whose bit pattern is non-zero, sorted by row. Columns are sorted by length (longest
first, ``perm``) and dealt into groups of :data:`LANES` consecutive columns. Group ``g`` holds
``rounds_g`` rounds (the length of its longest column); round ``r`` stores, for each of the 16
columns, its ``r``-th entry: ``rows[gptr[g] + r, lane]`` and ``values[...]``. Short columns are
padded with value 0 at row ``K`` (a zero slot the kernels append to the activation), so a round
is 16 lanes of plain loads and one vector multiply-add; sorting keeps that padding to a few
percent. ``counts`` gives each column's true length, for kernels that skip the padding, and
``blocks`` where each column's entries of each :data:`ROW_BLOCK` rows start.

Only stored non-zeros are ever read: a NaN or infinity in an activation reaches an output only
through a weight whose bit pattern is non-zero (pruned weights are structural zeros), as in the
native onnxruntime kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import lsc_ort
from lsc_ort.format import bit_patterns

LANES = 16
"""Columns per group; a multiple of every target's vector width (NEON 4, AVX2 8, AVX-512 16)."""
ROW_BLOCK = 256
"""Rows per row block: ``blocks[c, b]`` is where column ``c``'s entries of rows
``[b * ROW_BLOCK, (b + 1) * ROW_BLOCK)`` start, so that batched kernels can sweep the rows of
a long activation tile block by block while it stays in cache."""

_INT32_MAX = 2**31 - 1


class LscImportError(ValueError):
    """An LSC node cannot be imported: a malformed blob, a bad attribute or shape. The message
    names the op and the node: ``[LSCMatMul] node 'fc1': ...``."""


def node_error(op: str, node: str, message: str) -> LscImportError:
    return LscImportError(f"[{op}] node '{node}': {message}")


@dataclass(frozen=True)
class ColumnLayout:
    """A weight ``[K, N]`` as sorted column lists in groups of :data:`LANES` (module docstring)."""

    k: int
    n: int
    gptr: np.ndarray
    """int32 ``[groups + 1]``: first round of each group."""
    rows: np.ndarray
    """int32 ``[rounds, LANES]``: row of each entry, ``k`` (the zero slot) in padding."""
    values: np.ndarray
    """float32 ``[rounds, LANES]``: value of each entry, 0 in padding."""
    counts: np.ndarray
    """int32 ``[groups * LANES]``: entries of each (sorted) column; 0 for the padding columns."""
    perm: np.ndarray
    """int32 ``[groups * LANES]``: original column of each sorted column (0 for padding ones)."""
    inverse: np.ndarray
    """int32 ``[n]``: sorted position of each original column."""
    blocks: np.ndarray
    """int32 ``[groups * LANES, row_blocks + 1]``: first entry (round within the column's group)
    of each row block of each sorted column; the last is the column's length."""
    nnz: int

    @property
    def groups(self) -> int:
        return int(self.gptr.size - 1)

    @property
    def rounds(self) -> int:
        return int(self.rows.shape[0])

    @property
    def padded_columns(self) -> int:
        return self.groups * LANES

    @property
    def row_blocks(self) -> int:
        return int(self.blocks.shape[1] - 1)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays()))

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays in the order the kernels take them: gptr, rows, values, counts, perm,
        inverse, blocks."""
        return (self.gptr, self.rows, self.values, self.counts, self.perm, self.inverse, self.blocks)


def column_layout(values: np.ndarray, nonzero: np.ndarray) -> ColumnLayout:
    """The layout of the float32 matrix ``values [K, N]`` whose stored entries are ``nonzero``."""
    k, n = values.shape
    counts = np.count_nonzero(nonzero, axis=0).astype(np.int64)
    order = np.argsort(-counts, kind="stable")
    groups = max(1, -(-n // LANES))
    padded = groups * LANES
    sorted_counts = np.zeros(padded, np.int64)
    sorted_counts[:n] = counts[order]
    rounds = sorted_counts.reshape(groups, LANES).max(axis=1)
    gptr = np.zeros(groups + 1, np.int64)
    np.cumsum(rounds, out=gptr[1:])
    total = max(1, int(gptr[-1]))  # one padding round keeps every buffer non-empty
    if total * LANES > _INT32_MAX or k >= _INT32_MAX or n >= _INT32_MAX:
        raise ValueError(f"the weight {k}x{n} has too many entries for 32-bit indices")
    rows = np.full((total, LANES), k, np.int32)
    vals = np.zeros((total, LANES), np.float32)
    columns, entry_rows = np.nonzero(nonzero[:, order].T)  # sorted by column, then row
    if columns.size:
        starts = np.zeros(n + 1, np.int64)
        np.cumsum(counts[order], out=starts[1:])
        rank = np.arange(columns.size) - starts[columns]
        slot = gptr[columns // LANES] + rank
        lane = columns % LANES
        rows[slot, lane] = entry_rows
        vals[slot, lane] = values[entry_rows, order[columns]]
    perm = np.zeros(padded, np.int32)
    perm[:n] = order
    inverse = np.empty(n, np.int32)
    inverse[order] = np.arange(n, dtype=np.int32)
    row_blocks = max(1, -(-k // ROW_BLOCK))
    blocks = np.zeros((padded, row_blocks + 1), np.int32)
    if columns.size:  # entries of column c below row b * ROW_BLOCK, for each b
        below = np.zeros((padded, row_blocks + 1), np.int64)
        np.add.at(below, (columns, entry_rows // ROW_BLOCK + 1), 1)
        blocks = np.cumsum(below, axis=1).astype(np.int32)
    return ColumnLayout(k=k, n=n, gptr=gptr.astype(np.int32), rows=rows, values=vals,
                        counts=sorted_counts.astype(np.int32), perm=perm, inverse=inverse,
                        blocks=blocks, nnz=int(columns.size))


def decode_blob(blob: np.ndarray, op: str, node: str) -> tuple[np.ndarray, np.ndarray]:
    """The weight a blob stands for, as float32 values (``scale * q`` for int8) and the mask of
    its stored entries (non-zero bit patterns), decoded by :func:`lsc_ort.decode`.

    Raises:
        LscImportError: the blob is malformed (the reader's message, prefixed by op and node).
    """
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise node_error(op, node, f"the weight blob must be a 1-D uint8 tensor, got {blob.ndim}-D {blob.dtype}")
    try:
        decoded = lsc_ort.decode(blob)
        scale = float(lsc_ort.inspect(blob)["scale"])
    except ValueError as error:
        raise node_error(op, node, f"bad weight blob: {error}") from None
    nonzero = (bit_patterns(decoded) != 0).reshape(decoded.shape)
    if decoded.dtype == np.int8:
        values = np.float32(scale) * decoded.astype(np.float32)
    else:
        values = decoded.astype(np.float32)
    return values, nonzero


def matmul_layout(blob: np.ndarray, trans_b: bool, node: str, op: str = "LSCMatMul") -> ColumnLayout:
    """The layout of an ``LSCMatMul`` weight ``W [K, N]`` (the transpose of the blob's matrix
    when ``transB = 1``)."""
    values, nonzero = decode_blob(blob, op, node)
    if values.ndim != 2:
        raise node_error(op, node, f"the weight blob holds a tensor of rank {values.ndim}; {op} needs a 2-D matrix")
    if trans_b:
        values, nonzero = values.T, nonzero.T
    try:
        return column_layout(values, nonzero)
    except ValueError as error:
        raise node_error(op, node, str(error)) from None


def conv_layout(blob: np.ndarray, node: str, op: str = "LSCConv") -> tuple[tuple[int, ...], ColumnLayout]:
    """The weight shape ``[M, C/group, (kH,) kW]`` of an ``LSCConv`` and the layout of its
    matrix ``[C/group * kH * kW, M]`` (one column per output channel)."""
    values, nonzero = decode_blob(blob, op, node)
    if values.ndim not in (3, 4):
        raise node_error(op, node, f"the weight blob holds a tensor of shape {list(values.shape)}; "
                         f"{op} supports 1-D and 2-D convolutions (weights of rank 3 or 4)")
    m = values.shape[0]
    try:
        layout = column_layout(values.reshape(m, -1).T, nonzero.reshape(m, -1).T)
    except ValueError as error:
        raise node_error(op, node, str(error)) from None
    return tuple(int(d) for d in values.shape), layout
