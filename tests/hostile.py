"""Builders of hostile blobs and helpers shared by the bad-input tests."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

import lsc_ort
from lsc_ort.format import ValueDType, pack_blob

ERRORS = (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidArgument,
          ort.capi.onnxruntime_pybind11_state.RuntimeException, ort.capi.onnxruntime_pybind11_state.InvalidGraph)
"""What onnxruntime raises when a custom op fails session creation or a run."""

F32 = ValueDType.FLOAT32


def refresh_crc(blob: bytes | bytearray) -> bytes:
    """``blob`` with its size field and CRC made consistent again (a crafted, CRC-valid blob)."""
    out = bytearray(blob)
    out[8:16] = struct.pack("<Q", len(out))
    out[16:20] = struct.pack("<I", zlib.crc32(bytes(out[20:])))
    return bytes(out)


def corrupt_randomly(blob: bytes, rng: np.random.Generator, count: int) -> bytes:
    """``blob`` with ``count`` random positions after its CRC field set to random bytes, then
    made CRC-valid again: what a crafted blob looks like to the decoders."""
    corrupted = bytearray(blob)
    for position in rng.integers(20, len(blob), size=count):
        corrupted[position] = rng.integers(0, 256)
    return refresh_crc(corrupted)


def with_shape(blob: bytes, shape: Sequence[int]) -> bytes:
    """``blob`` declaring ``shape`` instead of its own (of the same rank), CRC refreshed."""
    ndim = blob[20]
    if len(shape) != ndim:
        raise ValueError(f"the blob has rank {ndim}, not {len(shape)}")
    out = bytearray(blob)
    out[40:40 + 8 * ndim] = struct.pack(f"<{ndim}Q", *shape)
    return refresh_crc(out)


def empty_blob(codec: str, shape: Sequence[int]) -> bytes:
    """A valid blob of ``codec`` for an empty tensor of rank ``len(shape)``, then declaring
    ``shape`` (its layout follows from the zero first dim, whatever the other dims)."""
    template = np.zeros((0, *[2] * (len(shape) - 1)), np.float32)
    return with_shape(lsc_ort.encode(template, codec), shape)


def one_row_blob(codec: str, cols: int) -> bytes:
    """A blob of ``codec`` declaring shape ``[1, cols]`` and holding one non-zero, at column 3.

    Encodes a ``[1, 8]`` row and widens its declared shape: a valid blob for the codecs whose data
    follow the non-zeros (indices, positions), not the element count; the others then fail their
    layout checks.
    """
    row = np.zeros((1, 8), np.float32)
    row[0, 3] = 1.5
    blob = lsc_ort.encode(row, codec, **({"block": (1, 1)} if codec == "bsr" else {}))
    return with_shape(blob, [1, cols])


def lsc_whole_matrix_blob(rows: int, cols: int, kept: bool = False) -> bytes:
    """An lsc blob of shape ``[rows, cols]`` made of one block covering the whole matrix: empty (a
    few hundred bytes however large the shape), or with one non-zero at (0, 0) coded by SRI."""
    if not kept:
        return pack_blob(codec_id=5, dtype=F32, shape=[rows, cols], params=[rows, cols, 0, 0, 1],
                         sections=[b"\0", np.zeros(4, "<u8"), b"", b""], nnz=0)
    table = np.array([0, 0, 1, 1], "<u8")
    return pack_blob(codec_id=5, dtype=F32, shape=[rows, cols], params=[rows, cols, 16, 1, 1],
                     sections=[b"\1", table, np.zeros(2, np.uint8), np.array([1.5], "<f4")], nnz=1)


SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")
"""Whether the tests run under AddressSanitizer (.ci/run's sanitizer stage), whose allocator keeps
freed memory in quarantine: resident-memory measurements are meaningless there."""


def rss_mib() -> float:
    """This process's resident memory now, in MiB (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_rss() -> None:
    """Restart the peak that :func:`peak_rss_mib` reports from the current resident memory (Linux)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_rss_mib() -> float:
    """This process's peak resident memory since the last :func:`reset_peak_rss`, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_python(code: str, timeout: float = 300, **env: str) -> str:
    """Runs ``code`` in a fresh interpreter of this environment (a guard against hangs, and a
    clean process for memory measurements); returns its stdout, raising on failure."""
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, **env}, cwd=os.path.dirname(os.path.dirname(__file__)))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the subprocess did not finish within {timeout:.0f} s: a hang") from None
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout
