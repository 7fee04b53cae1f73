"""``relidx``: Deep Compression's relative index (Han et al. 2016) with filler zeros.

Every stored entry is a ``bits``-wide gap code ``d`` and a value: the entry sits ``d + 1``
positions after the previous one (the first at position ``d``), in C order. A run of more than
``2**bits - 1`` zeros is bridged by *filler* entries (``d = 2**bits - 1``, value 0), which is
what makes this index expensive at high sparsity.

Params: ``bits`` (1..16; ``"auto"`` picks the smallest of 4, 5 and 8).
Sections: ``codes`` — one code per entry, packed LSB first; ``values`` — one value per entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lsc_ort.codecs.base import Codec, Encoded, WeightTensor, reject_unknown
from lsc_ort.codecs.bits import pack_codes, packed_size, unpack_codes
from lsc_ort.format import BlobFormatError, BlobView

AUTO_WIDTHS = (4, 5, 8)


def _gaps(weight: WeightTensor) -> np.ndarray:
    return np.diff(weight.nonzero, prepend=-1) - 1


class RelidxCodec(Codec):
    name = "relidx"
    codec_id = 2
    param_names = ("bits",)
    section_names = ("codes", "values")
    description = "relative index with filler zeros (Deep Compression)"

    def encode(self, weight: WeightTensor, *, bits: int | str = "auto", **options: Any) -> Encoded:
        reject_unknown(self.name, options)
        gaps = _gaps(weight)
        if bits == "auto":
            itemsize = weight.dtype.itemsize

            def size(width: int) -> int:
                entries = gaps.size + int((gaps >> width).sum())
                return packed_size(entries, width) + entries * itemsize

            bits = min(AUTO_WIDTHS, key=size)
        if not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 16:
            raise ValueError(f"relidx bits must be an integer in [1, 16] or 'auto', got {bits!r}")
        span = 1 << int(bits)
        fillers = gaps >> int(bits)
        per_nz = fillers + 1
        codes = np.full(int(per_nz.sum()), span - 1, dtype=np.int64)
        values = np.zeros(codes.size, dtype=weight.bits.dtype)
        last = np.cumsum(per_nz) - 1
        codes[last] = gaps - fillers * span
        values[last] = weight.bits[weight.nonzero]
        return Encoded(params=(int(bits),), sections=(pack_codes(codes, int(bits)), values))

    def decode(self, view: BlobView) -> np.ndarray:
        self.check_layout(view)
        bits = self.param(view, "bits", 1, 16)
        values = self.values(view)
        codes = unpack_codes(self.section(view, "codes"), values.size, bits, f"{self.name}: codes")
        positions = np.cumsum(codes + 1) - 1
        numel = view.header.numel
        if positions.size and positions[-1] >= numel:
            raise BlobFormatError(
                f"{self.name}: entry position {int(positions[-1])} is out of range [0, {numel})"
            )
        out = self.zeros(view)
        out[positions] = values
        return out
