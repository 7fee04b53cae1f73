"""The codec interface: one subclass per encoding, registered by name and id."""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from lsc_ort.format import BlobFormatError, BlobView, ValueDType, bit_patterns, matrix_shape, memory_budget


@dataclass(frozen=True)
class WeightTensor:
    """A weight tensor prepared for encoding: its flat little-endian bit patterns and metadata."""

    bits: np.ndarray
    """Flat C-order array of unsigned ints as wide as the dtype (uint32 for float32, ...)."""
    shape: tuple[int, ...]
    dtype: ValueDType
    scale: float = 1.0
    _nonzero: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def from_array(cls, array: np.ndarray, scale: float = 1.0) -> WeightTensor:
        return cls(bits=bit_patterns(array), shape=tuple(array.shape),
                   dtype=ValueDType.from_numpy(array.dtype), scale=float(scale))

    @property
    def numel(self) -> int:
        return int(self.bits.size)

    @property
    def matrix_shape(self) -> tuple[int, int]:
        return matrix_shape(self.shape)

    @property
    def nonzero(self) -> np.ndarray:
        """Sorted flat indices of the non-zero bit patterns (computed once, then cached)."""
        if not self._nonzero:
            self._nonzero.append(np.flatnonzero(self.bits))
        return self._nonzero[0]

    @property
    def nnz(self) -> int:
        return int(self.nonzero.size)


@dataclass(frozen=True)
class Encoded:
    """What a codec produces: its header params (in ``param_names`` order) and section payloads."""

    params: tuple[int, ...]
    sections: tuple[bytes | np.ndarray, ...]


class Codec(abc.ABC):
    """An encoding of a weight tensor into blob sections, and back.

    Subclasses set the class attributes, implement :meth:`encode` and :meth:`decode`, and are
    registered with :func:`lsc_ort.codecs.register`. :meth:`decode` must validate everything
    it reads and raise :class:`~lsc_ort.format.BlobFormatError` naming the problem.
    """

    name: ClassVar[str]
    codec_id: ClassVar[int]
    param_names: ClassVar[tuple[str, ...]] = ()
    section_names: ClassVar[tuple[str, ...]]
    description: ClassVar[str] = ""
    auto_options: ClassVar[dict[str, Any]] = {}
    """Options ``codec="auto"`` encodes with (e.g. a faster search than the codec's default)."""

    @abc.abstractmethod
    def encode(self, weight: WeightTensor, **options: Any) -> Encoded:
        """Encode ``weight``; ``options`` are codec-specific (unknown ones raise ``TypeError``)."""

    @abc.abstractmethod
    def decode(self, view: BlobView) -> np.ndarray:
        """Decode a parsed blob into the flat bit-pattern array of ``view.header.numel`` items."""

    def available(self) -> bool:
        """Whether :meth:`encode` can run here (``f2f`` needs the native library)."""
        return True

    def estimate_bytes(self, weight: WeightTensor) -> float | None:
        """A lower estimate of the blob size from the first section on, or ``None``; with it
        ``codec="auto"`` skips codecs that cannot beat the smallest blob so far."""
        return None

    def describe(self, view: BlobView) -> dict[str, Any]:
        """Codec-specific facts that :func:`lsc_ort.inspect` adds to its dict (none by default).

        Called on a container-validated blob; must not decode the values, and raises
        :class:`~lsc_ort.format.BlobFormatError` on anything it cannot read.
        """
        return {}

    # -- helpers shared by the codecs -------------------------------------------------------

    def check_layout(self, view: BlobView) -> None:
        """Check the number of params and sections against this codec's spec."""
        header = view.header
        if len(header.params) != len(self.param_names):
            raise BlobFormatError(
                f"{self.name}: header has {len(header.params)} params, expected "
                f"{len(self.param_names)} ({', '.join(self.param_names) or 'none'})"
            )
        if len(view.sections) != len(self.section_names):
            raise BlobFormatError(
                f"{self.name}: blob has {len(view.sections)} sections, expected "
                f"{len(self.section_names)} ({', '.join(self.section_names)})"
            )

    def section(self, view: BlobView, name: str, dtype: np.dtype | type = np.uint8,
                count: int | None = None) -> np.ndarray:
        """Section ``name`` as an array, checking its element count when ``count`` is given."""
        array = view.section_array(self.section_names.index(name), dtype, f"{self.name}: {name}")
        if count is not None and array.size != count:
            raise BlobFormatError(
                f"{self.name}: {name} section has {array.size} elements, expected {count}"
            )
        return array

    def check_memory(self, view: BlobView, nbytes: int) -> None:
        """Raise :class:`~lsc_ort.format.BlobFormatError` when decoding needs ``nbytes`` at once,
        more than the memory budget (:func:`~lsc_ort.format.memory_budget`)."""
        if nbytes > memory_budget():
            raise BlobFormatError(
                f"{self.name}: decoding shape {list(view.header.shape)} needs {-(-nbytes >> 20)} MiB, more than "
                f"the memory budget of {memory_budget() >> 20} MiB; is the blob's shape corrupted?")

    def zeros(self, view: BlobView, shape: int | tuple[int, ...] | None = None) -> np.ndarray:
        """Zeroed bit patterns to decode into: ``numel`` of them, or an array of ``shape`` (such
        as a padded block grid), within the memory budget (:meth:`check_memory`)."""
        dtype = view.header.dtype.bits_dtype
        shape = view.header.numel if shape is None else shape
        nbytes = math.prod((shape,) if isinstance(shape, int) else shape) * dtype.itemsize
        self.check_memory(view, nbytes)
        try:
            return np.zeros(shape, dtype=dtype)
        except (MemoryError, ValueError):
            raise BlobFormatError(
                f"{self.name}: cannot allocate {nbytes >> 20} MiB to decode shape {list(view.header.shape)}"
            ) from None

    def values(self, view: BlobView, count: int | None = None) -> np.ndarray:
        return self.section(view, "values", view.header.dtype.bits_dtype, count)

    def param(self, view: BlobView, name: str, low: int, high: int) -> int:
        """The header param ``name``, checked to lie in ``[low, high]``."""
        value = view.header.params[self.param_names.index(name)]
        if not low <= value <= high:
            raise BlobFormatError(f"{self.name}: param {name}={value} is out of range [{low}, {high}]")
        return int(value)


def reject_unknown(codec: str, options: dict[str, Any]) -> None:
    if options:
        raise TypeError(f"codec {codec!r} got unexpected option(s): {', '.join(sorted(options))}")


def check_sorted_unique_rows(indptr: np.ndarray, indices: np.ndarray, limit: int, what: str) -> None:
    """Validate a CSR-style (indptr, indices) pair: monotone indptr, indices in range and
    strictly increasing within each row."""
    if indptr[0] != 0 or indptr[-1] != indices.size:
        raise BlobFormatError(
            f"{what}: index pointer runs from {indptr[0]} to {indptr[-1]}, expected 0 to {indices.size}"
        )
    if np.any(np.diff(indptr.astype(np.int64)) < 0):
        raise BlobFormatError(f"{what}: index pointer is not monotone")
    if indices.size:
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= limit:
            bad = low if low < 0 else high
            raise BlobFormatError(f"{what}: index {bad} is out of range [0, {limit})")
        step = np.diff(indices.astype(np.int64))
        row_start = np.zeros(indices.size, dtype=bool)
        row_start[indptr[1:-1][indptr[1:-1] < indices.size]] = True
        if np.any((step <= 0) & ~row_start[1:]):
            raise BlobFormatError(f"{what}: indices are not strictly increasing within a row")
