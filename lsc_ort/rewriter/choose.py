"""Layerwise codec choice: encode a weight once, with the codec that stores it in fewest bytes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lsc_ort.api import encode, inspect
from lsc_ort.codecs import available_codecs
from lsc_ort.codecs.base import WeightTensor
from lsc_ort.codecs.mswu import unified_fraction
from lsc_ort.entropy import entropy_bound_bytes
from lsc_ort.format import bit_patterns
from lsc_ort.report import DENSE
from lsc_ort.rewriter.graph import ConstantValue, GraphContext
from lsc_ort.rewriter.rules.base import SUPPORTED_DTYPES

AUTO = "auto"


def weight_statistics(array: np.ndarray) -> tuple[float, float]:
    """``(sparsity, entropy bound in bytes)`` of a float array; a zero is an all-zero bit pattern
    (``-0.0`` is not a zero, as in the blob format)."""
    bits = bit_patterns(array)
    numel = int(bits.size)
    nnz = int(np.count_nonzero(bits))
    sparsity = 1.0 - nnz / numel if numel else 0.0
    return sparsity, entropy_bound_bytes(numel, nnz, 8 * array.dtype.itemsize)


def positive_zeros(array: np.ndarray) -> tuple[np.ndarray, int]:
    """``array`` with every ``-0.0`` replaced by ``+0.0`` (a copy when any is), and how many."""
    bits = bit_patterns(array)
    negative_zero = bits == (1 << (8 * array.dtype.itemsize - 1))
    count = int(np.count_nonzero(negative_zero))
    if not count:
        return array, 0
    fixed = bits.copy()
    fixed[negative_zero] = 0
    return fixed.view(array.dtype.newbyteorder("<")).astype(array.dtype, copy=False).reshape(array.shape), count


@dataclass(frozen=True)
class WeightChoice:
    """How one weight tensor is stored after the rewrite."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    sparsity: float
    dense_bytes: int
    entropy_bound_bytes: float
    codec: str
    """The blob's codec, or ``"dense"`` when the weight stays dense."""
    encoded_bytes: int
    blob: str | None
    """Name of the uint8 initializer holding the blob; None when the weight stays dense."""
    reason: str = ""
    """Why the weight stays dense, or what was changed in storing it."""
    encoding_efficiency: float | None = None
    """The blob's ``encoding_efficiency`` (f2f), else ``None``."""


def validate_codec(codec: str) -> str:
    """``codec`` if it is ``"auto"`` or a registered codec name.

    Raises:
        ValueError: naming the accepted values.
    """
    names = available_codecs()
    if codec != AUTO and codec not in names:
        raise ValueError(f"unknown codec {codec!r}; choose 'auto' or one of: {', '.join(names)}")
    return codec


class CodecChooser:
    """Decides, once per weight tensor, whether and how to encode it.

    ``codec="auto"`` keeps the smallest encoding over all registered codecs and keeps the weight
    dense when no encoding is smaller than its dense bytes; a codec name forces that codec.
    Weights whose sparsity is below ``min_sparsity`` stay dense either way; the weights of MSWU
    unified blocks but the one value each block stores count as zeros here.

    Unless ``keep_negative_zeros``, weights equal to ``-0.0`` are stored as ``+0.0``: pruning by
    multiplying with a mask (``torch.nn.utils.prune`` does) leaves ``-0.0`` wherever a negative
    weight was pruned, and the blob format keeps every non-zero bit pattern. The products they
    feed are equal either way, up to the sign of an exactly zero result.
    """

    def __init__(self, codec: str = AUTO, min_sparsity: float = 0.5, keep_negative_zeros: bool = False) -> None:
        self.codec = validate_codec(codec)
        self.keep_negative_zeros = keep_negative_zeros
        if not 0.0 <= min_sparsity <= 1.0:
            raise ValueError(f"min_sparsity must be in [0, 1], got {min_sparsity}")
        self.min_sparsity = min_sparsity
        self._choices: dict[str, WeightChoice] = {}

    def seen(self, weight: ConstantValue) -> bool:
        """Whether ``weight`` was already decided (it is shared by several nodes)."""
        return weight.name in self._choices

    def choose(self, weight: ConstantValue, ctx: GraphContext) -> WeightChoice:
        """The choice for ``weight``; the blob initializer is added to ``ctx`` on the first call."""
        if weight.name not in self._choices:
            self._choices[weight.name] = self._decide(weight, ctx)
        return self._choices[weight.name]

    def _decide(self, weight: ConstantValue, ctx: GraphContext) -> WeightChoice:
        array = ctx.read(weight)
        if array.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"weight '{weight.name}' is {array.dtype}, expected float32 or float16")
        flipped = 0
        if not self.keep_negative_zeros:
            array, flipped = positive_zeros(array)
        sparsity, bound = weight_statistics(array)

        def dense(reason: str) -> WeightChoice:
            return WeightChoice(
                weight.name,
                array.shape,
                str(array.dtype),
                sparsity,
                array.nbytes,
                bound,
                DENSE,
                array.nbytes,
                None,
                reason,
            )

        if array.size == 0:
            return dense("empty weight")
        if sparsity < self.min_sparsity:
            # MSWU: weights of a unified block, but its one stored value, count as zeros do.
            unified = unified_fraction(WeightTensor.from_array(array), needed=self.min_sparsity - sparsity)
            if sparsity + unified < self.min_sparsity:
                extra = f" (+ {unified:.1%} unified)" if unified else ""
                return dense(f"sparsity {sparsity:.1%}{extra} is below min_sparsity {self.min_sparsity:.1%}")
        blob = encode(array, self.codec)
        info = inspect(blob)
        codec = str(info["codec"])
        if self.codec == AUTO and (codec == "dense" or len(blob) >= array.nbytes):
            return dense(
                f"no codec beats dense storage (smallest: {codec}, {len(blob):,} B "
                f"for {array.nbytes:,} dense B)"
            )
        name = ctx.add_initializer(f"{weight.name}_lsc_blob", np.frombuffer(blob, dtype=np.uint8))
        note = f"{flipped:,} weights of -0.0 stored as +0.0" if flipped else ""
        return WeightChoice(
            weight.name, array.shape, str(array.dtype), sparsity, array.nbytes, bound, codec, len(blob), name, note,
            info.get("encoding_efficiency"),
        )
