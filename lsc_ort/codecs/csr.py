"""``csr``: compressed sparse rows of the matrix view with int32 indices (the usual baseline).

Sections: ``indptr`` — int32 ``[R + 1]``; ``indices`` — int32 column of each non-zero, strictly
increasing within a row; ``values`` — the non-zeros, row-major.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lsc_ort.codecs.base import Codec, Encoded, WeightTensor, check_sorted_unique_rows, reject_unknown
from lsc_ort.format import BlobView

INT32_MAX = 2**31 - 1


class CsrCodec(Codec):
    name = "csr"
    codec_id = 1
    section_names = ("indptr", "indices", "values")
    description = "compressed sparse rows, int32 indices"

    def encode(self, weight: WeightTensor, **options: Any) -> Encoded:
        reject_unknown(self.name, options)
        rows, cols = weight.matrix_shape
        if cols > INT32_MAX or weight.nnz > INT32_MAX:
            raise ValueError(f"csr uses int32 indices; a {rows}x{cols} matrix with "
                             f"{weight.nnz} non-zeros does not fit")
        nz = weight.nonzero
        counts = np.bincount(nz // max(cols, 1), minlength=rows) if nz.size else np.zeros(rows, np.int64)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype("<i4")
        indices = (nz % max(cols, 1)).astype("<i4")
        return Encoded(params=(), sections=(indptr, indices, weight.bits[nz]))

    def decode(self, view: BlobView) -> np.ndarray:
        self.check_layout(view)
        rows, cols = view.header.matrix_shape
        indptr = self.section(view, "indptr", np.int32, rows + 1)
        indices = self.section(view, "indices", np.int32)
        values = self.values(view, indices.size)
        check_sorted_unique_rows(indptr, indices, cols, f"{self.name}: indices")
        row_of = np.repeat(np.arange(rows, dtype=np.int64), indptr[1:] - indptr[:-1])
        out = self.zeros(view)
        out[row_of * cols + indices] = values
        return out
