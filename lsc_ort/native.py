"""Finding and loading the native kernel library (``custom_ops/``, built by ``pip install``)."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime

LIBRARY_ENV = "LSC_ORT_LIBRARY"
"""Environment variable that overrides the library path (e.g. a development build)."""


def _library_name() -> str:
    if sys.platform == "win32":
        return "lsc_ort_ops.dll"
    if sys.platform == "darwin":
        return "liblsc_ort_ops.dylib"
    return "liblsc_ort_ops.so"


def _candidates() -> list[Path]:
    name = _library_name()
    found = []
    override = os.environ.get(LIBRARY_ENV)
    if override:
        found.append(Path(override))
    found.append(Path(__file__).resolve().parent / name)
    try:  # an editable install keeps the built library in site-packages, not next to the sources
        for file in metadata.files("lsc-ort") or ():
            if file.name == name:
                found.append(Path(str(file.locate())).resolve())
    except metadata.PackageNotFoundError:
        pass
    return found


def get_library_path() -> str:
    """Path of the native custom-op library, for ``SessionOptions.register_custom_ops_library``.

    Raises:
        FileNotFoundError: the library was not built (install the package with ``pip install``,
            or point ``LSC_ORT_LIBRARY`` at a build).
    """
    candidates = _candidates()
    for path in candidates:
        if path.is_file():
            return str(path)
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"the lsc-ort native library is not built (looked in: {tried}); install the package with "
        f"'pip install .' or set {LIBRARY_ENV} to a built {_library_name()}"
    )


def library_available() -> bool:
    """Whether :func:`get_library_path` finds a built library."""
    try:
        get_library_path()
    except FileNotFoundError:
        return False
    return True


def session_options(opts: onnxruntime.SessionOptions | None = None) -> onnxruntime.SessionOptions:
    """``opts`` (or new ``SessionOptions``) with the lsc-ort custom ops registered."""
    import onnxruntime

    if opts is None:
        opts = onnxruntime.SessionOptions()
    opts.register_custom_ops_library(get_library_path())
    return opts


@functools.cache
def load_library() -> ctypes.CDLL:
    """The library loaded with ctypes, for its C test API (``lsc_blob_*`` functions)."""
    return ctypes.CDLL(get_library_path())


def kernel_name() -> str:
    """Name of the kernel variant that new LSCMatMul / LSCConv instances select on this CPU,
    e.g. ``f32-spmm/columns-avx512`` (the environment variable ``LSC_ORT_ISA`` caps it)."""
    lib = load_library()
    lib.lsc_kernel_name.restype = ctypes.c_char_p
    return str(lib.lsc_kernel_name().decode())


def conv_runs_with_residual_in_place() -> int:
    """How many LSCConv runs in this process wrote their output into the buffer of their
    residual ``Z`` (onnxruntime reuses it when nothing reads ``Z`` afterwards), for tests."""
    lib = load_library()
    lib.lsc_conv_runs_with_residual_in_place.restype = ctypes.c_uint64
    return int(lib.lsc_conv_runs_with_residual_in_place())


def _blob_buffer(blob: bytes | bytearray | memoryview) -> tuple[ctypes.Array[ctypes.c_char], int]:
    data = bytes(blob)
    return ctypes.create_string_buffer(data, len(data)), len(data)


def native_validate(blob: bytes | bytearray | memoryview) -> int:
    """Validate ``blob`` with the native reader; returns its non-zero count.

    Raises:
        ValueError: the native reader rejects the blob (its message says why).
    """
    lib = load_library()
    buffer, size = _blob_buffer(blob)
    nnz = ctypes.c_uint64(0)
    err = ctypes.create_string_buffer(512)
    if lib.lsc_blob_validate(buffer, ctypes.c_size_t(size), ctypes.byref(nnz), err, ctypes.c_size_t(512)):
        raise ValueError(err.value.decode())
    return int(nnz.value)


def layout_stats(blob: bytes | bytearray | memoryview, k_is_row: bool = True) -> dict[str, int]:
    """The native execution layout of ``blob`` (``k_is_row``: as LSCMatMul with ``transB=0``):
    ``plain_nonzeros``, ``signed_sums``, ``unified_entries`` (one multiply each), ``unified_blocks``."""
    lib = load_library()
    buffer, size = _blob_buffer(blob)
    out = (ctypes.c_uint64 * 4)()
    err = ctypes.create_string_buffer(512)
    if lib.lsc_layout_stats(buffer, ctypes.c_size_t(size), ctypes.c_int(int(k_is_row)), out, err, ctypes.c_size_t(512)):
        raise ValueError(err.value.decode())
    return dict(zip(("plain_nonzeros", "signed_sums", "unified_entries", "unified_blocks"), out, strict=True))


def native_decode(blob: bytes | bytearray | memoryview) -> bytes:
    """Decode ``blob`` with the native reader into raw little-endian element bytes (C order)."""
    from lsc_ort.format import memory_budget, parse_blob

    native_validate(blob)
    header = parse_blob(blob).header
    lib = load_library()
    buffer, size = _blob_buffer(blob)
    nbytes = header.numel * header.dtype.itemsize
    if nbytes > memory_budget():
        raise ValueError(f"decoding shape {list(header.shape)} needs {-(-nbytes >> 20)} MiB, more than the memory "
                         f"budget of {memory_budget() >> 20} MiB")
    try:
        out = ctypes.create_string_buffer(max(1, nbytes))
    except (MemoryError, OverflowError):
        raise ValueError(f"cannot allocate the decoded tensor of shape {list(header.shape)}") from None
    err = ctypes.create_string_buffer(512)
    if lib.lsc_blob_decode(buffer, ctypes.c_size_t(size), out, ctypes.c_size_t(nbytes), err,
                           ctypes.c_size_t(512)):
        raise ValueError(err.value.decode())
    return out.raw[:nbytes]


def native_f2f_encode(positions: np.ndarray, values: np.ndarray, *, numel: int, bits: int, n_in: int, n_out: int,
                      n_s: int, seed: int, segment_blocks: int, planes: int, threads: int,
                      inputs_size: int) -> tuple[bytes, np.ndarray]:
    """Run the native f2f encoder (``custom_ops/src/encode/f2f_encoder.h``).

    Args:
        positions: the stream position of every slot, strictly increasing.
        values: the slots' bit patterns.
        inputs_size: bytes of the ``inputs`` section to fill.

    Returns:
        The ``inputs`` section and, per slot, a uint32 mask of the bits the network decodes wrong.

    Raises:
        ValueError: the encoder rejects its arguments (its message says why).
        FileNotFoundError: the library is not built.
    """
    import numpy as np

    lib = load_library()
    fn = lib.lsc_f2f_encode
    u64, pointer = ctypes.c_uint64, ctypes.c_void_p
    fn.argtypes = [pointer, pointer, u64, u64, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, u64, u64,
                   ctypes.c_uint32, ctypes.c_int, pointer, u64, pointer, ctypes.c_char_p, ctypes.c_size_t]
    fn.restype = ctypes.c_int
    positions = np.ascontiguousarray(positions, dtype=np.uint64)
    values = np.ascontiguousarray(values, dtype=np.uint32)
    if positions.size != values.size:
        raise ValueError(f"{positions.size} positions but {values.size} values")
    inputs = np.zeros(max(inputs_size, 1), dtype=np.uint8)
    misses = np.zeros(max(positions.size, 1), dtype=np.uint32)
    err = ctypes.create_string_buffer(512)
    if fn(positions.ctypes.data, values.ctypes.data, positions.size, numel, bits, n_in, n_out, n_s,
          seed & (2**64 - 1), segment_blocks, planes, threads, inputs.ctypes.data, inputs_size, misses.ctypes.data,
          err, 512):
        raise ValueError(err.value.decode())
    return inputs[:inputs_size].tobytes(), misses[: positions.size]
