"""``bitmap``: one bit per element marks the non-zeros, followed by their values.

Sections: ``mask`` — ``ceil(numel / 8)`` bytes, bit ``i`` (LSB first) set when element ``i`` (C
order) is non-zero, padding bits zero; ``values`` — the non-zeros in C order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lsc_ort.codecs.base import Codec, Encoded, WeightTensor, reject_unknown
from lsc_ort.codecs.bits import pack_mask, unpack_mask
from lsc_ort.format import BlobView


class BitmapCodec(Codec):
    name = "bitmap"
    codec_id = 3
    section_names = ("mask", "values")
    description = "1 bit per weight + non-zero values"

    def encode(self, weight: WeightTensor, **options: Any) -> Encoded:
        reject_unknown(self.name, options)
        mask = weight.bits != 0
        return Encoded(params=(), sections=(pack_mask(mask), weight.bits[mask]))

    def decode(self, view: BlobView) -> np.ndarray:
        self.check_layout(view)
        mask = unpack_mask(self.section(view, "mask"), view.header.numel, f"{self.name}: mask")
        values = self.values(view, int(np.count_nonzero(mask)))
        out = self.zeros(view)
        out[mask] = values
        return out
