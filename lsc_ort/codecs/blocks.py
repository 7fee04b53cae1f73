"""Block tiling of the matrix view, shared by the block codecs (``bsr``, ``lsc``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lsc_ort.codecs.base import Codec, WeightTensor
from lsc_ort.format import BlobView


def check_block(block: Any, codec: str, alternatives: str = "'auto'") -> tuple[int, int]:
    """Validate a user-given block shape ``(rows, cols)``; ``alternatives`` names the other
    accepted spellings for the message."""
    message = f"{codec} block must be a pair of positive ints or {alternatives}, got {block!r}"
    try:
        br, bc = (int(v) for v in block)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if br < 1 or bc < 1 or (br, bc) != tuple(block):
        raise ValueError(message)
    return br, bc


def fit_block(block: tuple[int, int], rows: int, cols: int) -> tuple[int, int]:
    """``block`` clamped to the matrix (a block taller or wider than the matrix only pads)."""
    return max(1, min(block[0], rows)), max(1, min(block[1], cols))


def read_block(codec: Codec, view: BlobView) -> tuple[int, int, int, int]:
    """The matrix view ``(rows, cols)`` and the validated ``block_rows``, ``block_cols`` params."""
    rows, cols = view.header.matrix_shape
    br = codec.param(view, "block_rows", 1, max(rows, 1))
    bc = codec.param(view, "block_cols", 1, max(cols, 1))
    return rows, cols, br, bc


def block_grid(rows: int, cols: int, block: tuple[int, int]) -> tuple[int, int]:
    """Number of block rows and block columns covering a ``rows x cols`` matrix."""
    return -(-rows // block[0]), -(-cols // block[1])


def blocks_of(weight: WeightTensor, block: tuple[int, int]) -> np.ndarray:
    """The matrix view as a ``[nbr, nbc, br, bc]`` array of bit patterns, edges zero-padded."""
    rows, cols = weight.matrix_shape
    br, bc = block
    nbr, nbc = block_grid(rows, cols, block)
    matrix = weight.bits.reshape(rows, cols)
    if (nbr * br, nbc * bc) != (rows, cols):
        padded = np.zeros((nbr * br, nbc * bc), dtype=matrix.dtype)
        padded[:rows, :cols] = matrix
        matrix = padded
    return matrix.reshape(nbr, br, nbc, bc).swapaxes(1, 2)


def unblock(grid: np.ndarray, rows: int, cols: int) -> np.ndarray | None:
    """Inverse of :func:`blocks_of`: the flat matrix, or ``None`` if padding holds a non-zero."""
    nbr, nbc, br, bc = grid.shape
    matrix = grid.swapaxes(1, 2).reshape(nbr * br, nbc * bc)
    if matrix[rows:].any() or matrix[:, cols:].any():
        return None
    return np.ascontiguousarray(matrix[:rows, :cols]).reshape(-1)
