"""``dense``: every element stored. The reference every ratio is measured against.

Sections: ``values`` — all ``numel`` elements, C order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lsc_ort.codecs.base import Codec, Encoded, WeightTensor, reject_unknown
from lsc_ort.format import BlobView


class DenseCodec(Codec):
    name = "dense"
    codec_id = 0
    section_names = ("values",)
    description = "all elements, uncompressed"

    def encode(self, weight: WeightTensor, **options: Any) -> Encoded:
        reject_unknown(self.name, options)
        return Encoded(params=(), sections=(weight.bits,))

    def decode(self, view: BlobView) -> np.ndarray:
        self.check_layout(view)
        return self.values(view, view.header.numel).copy()
