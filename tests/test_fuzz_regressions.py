"""Inputs found by the fuzzers (custom_ops/fuzz/), rebuilt as generated blobs: no binary fixtures.

Each entry names the target, what it found and where. ``fuzz_blob`` run for three minutes against
the reader as it was before the hardening of issue 11 (seeded only with valid blobs) found 20
inputs, all of one class: a blob of a few hundred bytes, valid for its codec, whose declared
shape gives a weight hundreds of millions of output columns (in either orientation), so that
``BuildColumnLists`` allocated gigabytes for its column index (out of memory, or a timeout
filling it). Seeded with the hostile blobs of ``make_corpus.py``, it also stopped at once on the
signed overflow of the matrix view of ``[0, 2^32 + 1, 2^32 - 1]`` in ``Blob::cols`` (UBSan).
"""

from __future__ import annotations

import numpy as np
import pytest

import lsc_ort
from lsc_ort import native
from tests.hostile import ERRORS, with_shape
from tests.op_models import conv_model, matmul_model, session

pytestmark = pytest.mark.skipif(not native.library_available(), reason="native library not built")


def widened(codec: str, small_shape: tuple[int, ...], shape: tuple[int, ...], **params: object) -> bytes:
    """A blob of ``codec`` encoding a small array with one non-zero, declaring ``shape``."""
    small = np.zeros(small_shape, np.float32)
    small.reshape(-1)[3 % small.size] = 1.5
    return with_shape(lsc_ort.encode(small, codec, **params), shape)


COLUMNS = r"the weight's number of output columns is \d+, more than a blob of \d+ bytes can back"
TAPS = r"the convolution's taps C \* kH \* kW is \d+, more than a blob of \d+ bytes can back"

# (name, blob, op, attributes, message) of the fuzz_blob findings (BuildColumnLists out of memory).
FINDINGS = [
    ("relidx [16, 2^28]", lambda: widened("relidx", (1, 8), (16, 2**28), bits=1), "matmul", {}, COLUMNS),
    ("relidx [2^30 + 7, 16], transposed", lambda: widened("relidx", (1, 16), (2**30 + 7, 16), bits=8), "matmul",
     {"transB": 1}, COLUMNS),
    ("csr 1-D [2^30 + 7681]", lambda: widened("csr", (8,), (2**30 + 7681,)), "matmul", {}, COLUMNS),
    ("csr [2, 11468803, 5] as a matrix", lambda: widened("csr", (2, 1, 5), (2, 11468803, 5)), "matmul", {},
     COLUMNS),
    ("csr [2, 11468803, 5] as a 1-D conv", lambda: widened("csr", (2, 1, 5), (2, 11468803, 5)), "conv", {}, TAPS),
    ("bsr [4, 50331648, 3, 3]", lambda: widened("bsr", (4, 1, 3, 3), (4, 50331648, 3, 3), block=(1, 2)), "conv",
     {}, TAPS),
    ("bsr [6, 33554437]", lambda: widened("bsr", (6, 5), (6, 33554437), block=(1, 5)), "matmul", {}, COLUMNS),
]


@pytest.mark.parametrize("name,make,op,attributes,message", FINDINGS, ids=[f[0] for f in FINDINGS])
def test_fuzz_blob_finding(name: str, make, op: str, attributes: dict, message: str) -> None:  # type: ignore[no-untyped-def]
    blob = make()
    assert native.native_validate(blob) == 1, "the blob must be valid: the finding is past the reader"
    model = matmul_model(blob, **attributes) if op == "matmul" else conv_model(blob, **attributes)
    node = r"LSCMatMul\] node 'lsc_mm'" if op == "matmul" else r"LSCConv\] node 'lsc_conv'"
    with pytest.raises(ERRORS, match=rf"{node}: .*{message}"):
        session(model)


def test_fuzz_blob_finding_matrix_view_overflow() -> None:
    """UBSan: signed integer overflow 4294967297 * 4294967295 in Blob::cols."""
    blob = with_shape(lsc_ort.encode(np.zeros((0, 2, 2), np.float32), "dense"), (0, 2**32 + 1, 2**32 - 1))
    with pytest.raises(ValueError, match="shape has too many elements"):
        native.native_validate(blob)


# fuzz_conv against the pre-hardening geometry (the old arithmetic behind the new interface), two
# minutes: 2588 inputs, signed overflows in (k - 1) * dilation, C/group * group, the padded sizes
# and the plane sizes, and direct-path planes out of proportion to the input and output. The
# attribute classes are pinned in test_conv_attributes.py; here the one without a dense twin.


def test_fuzz_conv_finding_group_times_channels_overflows() -> None:
    """A weight with no output channels passes `M % group == 0` for any group, and C/group * group
    overflowed: group 2^62 with C/group = 3 (the geometry checks it too, as fuzz_conv drives it)."""
    blob = lsc_ort.encode(np.zeros((0, 3, 3, 3), np.float32), "lsc")
    with pytest.raises(ERRORS, match=r"LSCConv\] node 'lsc_conv': C \* kH \* kW is too large: 27 \* "
                                     r"4611686018427387904 is not below 2\^62"):
        session(conv_model(blob, group=2**62))


def test_fuzz_blob_finding_tiled_kernel_on_a_weight_without_non_zeros() -> None:
    """UBSan: "applying non-zero offset 32 to null pointer" in the AVX-512 tiled kernel (and the AVX2
    one): a weight with no non-zeros has an empty (null) entry array, and the unrolled loop formed
    `p + U` before comparing it with the end. Found by fuzz_blob running every kernel on every
    layout (a relidx [8, 8] blob of zeros); reached by LSCMatMul beyond 12 rows and by LSCConv.
    GCC's UBSan (the sanitizer stage) does not flag this pointer arithmetic, Clang's does: the
    fuzz stage's seeds (an all-zero blob of every codec) reproduce it at once."""
    import os

    blob = lsc_ort.encode(np.zeros((8, 8), np.float32), "relidx")
    bias = np.arange(8, dtype=np.float32)
    for isa in ("avx512", "avx2", "scalar"):
        os.environ["LSC_ORT_ISA"] = isa
        try:
            sess = session(matmul_model(blob, bias))
            for m in (13, 70, 200):
                y = sess.run(None, {"A": np.ones((m, 8), np.float32)})[0]
                assert (y == bias).all()
            conv = lsc_ort.encode(np.zeros((4, 2, 3, 3), np.float32), "relidx")
            y = session(conv_model(conv, pads=[1, 1, 1, 1])).run(None, {"X": np.ones((2, 2, 9, 20), np.float32)})[0]
            assert y.shape == (2, 4, 9, 20) and not y.any()
        finally:
            del os.environ["LSC_ORT_ISA"]
