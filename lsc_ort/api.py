"""The public encode / decode / inspect functions."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from lsc_ort.codecs import available_codecs, codec_for_id, get_codec
from lsc_ort.codecs.base import WeightTensor
from lsc_ort.entropy import entropy_bound_bytes
from lsc_ort.format import BlobFormatError, BlobView, ValueDType, pack_blob, parse_blob

BlobLike = bytes | bytearray | memoryview | np.ndarray
_BLOB_TYPES = (bytes, bytearray, memoryview, np.ndarray)


def _check_blob_type(blob: object, function: str) -> None:
    if not isinstance(blob, _BLOB_TYPES):
        raise TypeError(
            f"{function}() takes a blob as bytes, bytearray, memoryview or a 1-D uint8 numpy array, "
            f"not {type(blob).__name__}"
        )


def encode(weight: ArrayLike, codec: str = "lsc", *, scale: float | None = None, **params: Any) -> bytes:
    """Encode a weight tensor into a self-describing blob.

    Args:
        weight: a float32, float16 or int8 array (never modified).
        codec: a name from :func:`available_codecs`, or ``"auto"`` for the smallest blob over all
            codecs with their automatic parameters (and their ``auto_options``: ``f2f`` searches a
            3-block shift register, about 9x faster than its default), skipping those that cannot run
            here (``f2f`` without the native library) and those whose estimate cannot win.
        scale: dequantization scale of int8 weights (real value = ``scale * q``); default 1.0.
        **params: codec options, e.g. ``block=(1, 8)`` or ``code_bits=5`` for ``lsc``,
            ``n_in=4, n_out=47, n_s=4`` for ``f2f``.

    Returns:
        The blob; :func:`decode` restores ``weight`` bit-exactly.
    """
    array = np.asarray(weight)
    dtype = ValueDType.from_numpy(array.dtype)
    if scale is not None and dtype != ValueDType.INT8:
        raise ValueError("scale applies to int8 weights only")
    scale = 1.0 if scale is None else float(scale)
    if dtype == ValueDType.INT8 and (not np.isfinite(scale) or scale == 0.0):
        raise ValueError(f"int8 scale must be finite and non-zero, got {scale}")
    if np.float32(scale) != scale:
        raise ValueError(f"scale {scale!r} is not representable as float32")
    tensor = WeightTensor.from_array(array, scale)
    if codec == "auto":
        if params:
            raise TypeError("codec='auto' takes no codec options")
        best: bytes | None = None
        for name in available_codecs():  # keep one candidate at a time: blobs can be large
            candidate = get_codec(name)
            if not candidate.available():
                continue
            if best is not None:
                estimate = candidate.estimate_bytes(tensor)
                if estimate is not None and estimate >= len(best):
                    continue
            blob = _encode(tensor, name, dict(candidate.auto_options))
            if best is None or len(blob) < len(best):
                best = blob
        assert best is not None
        return best
    return _encode(tensor, codec, params)


def _encode(tensor: WeightTensor, codec_name: str, params: dict[str, Any]) -> bytes:
    codec = get_codec(codec_name)
    encoded = codec.encode(tensor, **params)
    return pack_blob(codec_id=codec.codec_id, dtype=tensor.dtype, shape=tensor.shape,
                     params=encoded.params, sections=encoded.sections, nnz=tensor.nnz,
                     scale=tensor.scale)


def _decode_view(view: BlobView) -> np.ndarray:
    header = view.header
    codec = codec_for_id(header.codec_id)
    try:
        bits = codec.decode(view)
    except BlobFormatError:
        raise
    except MemoryError:
        raise BlobFormatError(
            f"{codec.name}: cannot allocate the decoded tensor of shape {list(header.shape)} "
            f"({header.numel * header.dtype.itemsize} bytes); is the blob corrupted?") from None
    except (ValueError, IndexError, OverflowError) as error:
        # A codec must name every problem itself; this keeps the contract (BlobFormatError) if
        # one slips through, and says it is a bug.
        raise BlobFormatError(
            f"{codec.name}: malformed blob not caught by its checks (please report): {error}") from error
    nnz = int(np.count_nonzero(bits))
    if nnz != header.nnz:
        raise BlobFormatError(f"{codec.name}: decoded {nnz} non-zeros, header declares {header.nnz}")
    return bits.view(header.dtype.numpy).reshape(header.shape)


def decode(blob: BlobLike) -> np.ndarray:
    """Decode a blob into the original array (bit-exact; int8 blobs give the int8 codes, the
    scale is in :func:`inspect`).

    Raises:
        BlobFormatError: (a ``ValueError``) naming the problem, on a malformed blob or one whose
            decoded tensor would exceed the memory budget (:func:`lsc_ort.format.memory_budget`).
        TypeError: ``blob`` is not bytes-like.
    """
    _check_blob_type(blob, "decode")
    return _decode_view(parse_blob(blob))


def inspect(blob: BlobLike) -> dict[str, Any]:
    """Describe a blob without decoding its values.

    Returns a dict with ``codec``, ``version``, ``shape``, ``dtype``, ``scale``, ``numel``,
    ``nnz``, ``sparsity``, ``params`` (name -> value), ``sections`` (name -> bytes),
    ``header_bytes``, ``total_bytes``, ``dense_bytes``, ``ratio`` (dense / total),
    ``bits_per_weight``, ``entropy_bound_bytes`` and ``efficiency`` (bound / total), plus the
    codec's own facts (:meth:`~lsc_ort.codecs.base.Codec.describe`): for ``f2f``,
    ``encoding_efficiency`` (care bits ÷ stored value bits, patches included; 1.0 is the
    limit), ``patch_bytes``, ``patches`` and ``care_bits``.
    """
    _check_blob_type(blob, "inspect")
    view = parse_blob(blob)
    header = view.header
    codec = codec_for_id(header.codec_id)
    codec.check_layout(view)
    numel = header.numel
    bound = entropy_bound_bytes(numel, header.nnz, 8 * header.dtype.itemsize)
    dense = numel * header.dtype.itemsize
    return {
        "codec": codec.name,
        "version": 1,
        "shape": list(header.shape),
        "dtype": header.dtype.name.lower(),
        "scale": header.scale,
        "numel": numel,
        "nnz": header.nnz,
        "sparsity": 1.0 - header.nnz / numel if numel else 0.0,
        "params": dict(zip(codec.param_names, header.params, strict=True)),
        "sections": {name: len(data) for name, data in zip(codec.section_names, view.sections, strict=True)},
        "header_bytes": view.header_bytes,
        "total_bytes": header.total_size,
        "dense_bytes": dense,
        "ratio": dense / header.total_size,
        "bits_per_weight": 8 * header.total_size / numel if numel else 0.0,
        "entropy_bound_bytes": bound,
        "efficiency": bound / header.total_size,
        **codec.describe(view),
    }
