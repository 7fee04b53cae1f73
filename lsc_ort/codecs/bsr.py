"""``bsr``: block sparse rows. The matrix view is cut into ``block_rows x block_cols`` blocks
(edge blocks zero-padded); non-zero blocks are stored whole.

Params: ``block_rows``, ``block_cols`` (``block="auto"`` picks the smallest of a few shapes).
Sections: ``indptr`` — int32 ``[nbr + 1]`` over block rows; ``indices`` — int32 block column of
each stored block, strictly increasing within a block row; ``values`` — each stored block,
row-major, padding elements zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lsc_ort.codecs.base import Codec, Encoded, WeightTensor, check_sorted_unique_rows, reject_unknown
from lsc_ort.codecs.blocks import block_grid, blocks_of, check_block, fit_block, read_block, unblock
from lsc_ort.format import BlobFormatError, BlobView

AUTO_BLOCKS = ((1, 2), (1, 4), (1, 8), (2, 2), (4, 1), (4, 4), (8, 1), (16, 1))


class BsrCodec(Codec):
    name = "bsr"
    codec_id = 4
    param_names = ("block_rows", "block_cols")
    section_names = ("indptr", "indices", "values")
    description = "block sparse rows, int32 indices"

    def encode(self, weight: WeightTensor, *, block: tuple[int, int] | str = "auto",
               **options: Any) -> Encoded:
        reject_unknown(self.name, options)
        rows, cols = weight.matrix_shape
        if block == "auto":
            def size(shape: tuple[int, int]) -> int:
                nbr, _ = block_grid(rows, cols, shape)
                nnzb = int(np.count_nonzero(blocks_of(weight, shape).any(axis=(2, 3))))
                return 4 * (nbr + 1 + nnzb) + nnzb * shape[0] * shape[1] * weight.dtype.itemsize

            block = min({fit_block(shape, rows, cols) for shape in AUTO_BLOCKS}, key=size)
        br, bc = fit_block(check_block(block, "bsr"), rows, cols)
        blocks = blocks_of(weight, (br, bc))
        nonzero = blocks.any(axis=(2, 3))
        nbc = nonzero.shape[1]
        if nbc > 2**31 - 1 or np.count_nonzero(nonzero) > 2**31 - 1:
            raise ValueError("bsr uses int32 indices; this matrix has too many blocks")
        indptr = np.concatenate([[0], np.cumsum(nonzero.sum(axis=1))]).astype("<i4")
        indices = np.nonzero(nonzero)[1].astype("<i4")
        return Encoded(params=(br, bc), sections=(indptr, indices, blocks[nonzero]))

    def decode(self, view: BlobView) -> np.ndarray:
        self.check_layout(view)
        rows, cols, br, bc = read_block(self, view)
        nbr, nbc = block_grid(rows, cols, (br, bc))
        indptr = self.section(view, "indptr", np.int32, nbr + 1)
        indices = self.section(view, "indices", np.int32)
        check_sorted_unique_rows(indptr, indices, nbc, f"{self.name}: indices")
        values = self.values(view, indices.size * br * bc)
        grid = self.zeros(view, (nbr, nbc, br, bc))
        block_row = np.repeat(np.arange(nbr), indptr[1:] - indptr[:-1])
        grid[block_row, indices] = values.reshape(-1, br, bc)
        out = unblock(grid, rows, cols)
        if out is None:
            raise BlobFormatError(f"{self.name}: a non-zero value lies in the padding of an edge block")
        return out
