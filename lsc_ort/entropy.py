"""The entropy bound: the yardstick every codec is measured against."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from lsc_ort.format import bit_patterns


def binary_entropy(p: float) -> float:
    """H(p) in bits."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))


def entropy_bound_bytes(numel: int, nnz: int, value_bits: int) -> float:
    """``(numel * H(nnz / numel) + nnz * value_bits) / 8``."""
    if numel == 0:
        return 0.0
    return (numel * binary_entropy(nnz / numel) + nnz * value_bits) / 8.0


def entropy_bound(weight: ArrayLike) -> float:
    """Lower bound, in bytes, on a lossless encoding of ``weight`` that stores its non-zero values
    verbatim: the entropy of its sparsity mask (``n * H(p)``) plus the bits of its non-zeros.

    A non-zero is any element whose bit pattern is not all zeros (``-0.0`` counts).
    """
    array = np.asarray(weight)
    nnz = int(np.count_nonzero(bit_patterns(array)))
    return entropy_bound_bytes(array.size, nnz, 8 * array.dtype.itemsize)
