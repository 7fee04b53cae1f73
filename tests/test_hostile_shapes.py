"""Crafted, CRC-valid blobs whose declared shape overflows int64 or dwarfs their data.

Both readers reject a shape whose non-zero dims, times the item size, multiply to 2^62 or more,
even when a dim is 0 (the matrix view of such a shape wrapped, and the layout builder read before
its arrays). A shape that fits but has (almost) no data behind it costs work and memory in proportion to the
data: the column index of a weight may not declare more output columns, nor a convolution more
taps, than its blob can back (16 per byte beyond 2^20). Every codec is covered.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lsc_ort
from lsc_ort import native
from lsc_ort.format import BlobFormatError
from tests.conftest import sparse_array
from tests.hostile import ERRORS, SANITIZED, empty_blob, lsc_whole_matrix_blob, one_row_blob, run_python, with_shape
from tests.op_models import conv_model, matmul_model, session

pytestmark = pytest.mark.skipif(not native.library_available(), reason="native library not built")

CODECS = lsc_ort.available_codecs()

OVERFLOWING = [
    [0, 2**32 + 1, 2**32 - 1],  # the non-zero dims multiply to 2^64 - 1: the matrix view wrapped to -1
    [2**31, 2**31, 0],  # exactly 2^62, the zero dim last
    [0, 2**62],  # one dim too large
    [0, 2**63 + 5],  # a dim negative as int64
    [3, 0, 2**61],  # 3 * 2^61
    [0, 2**21, 2**21, 2**21],  # 2^63 wraps to a negative int64
    [0, 2**61],  # 2^61 elements fit, but not their 2^63 bytes (nor a numpy array of that shape)
]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("shape", OVERFLOWING, ids=str)
def test_overflowing_shape_is_rejected_by_both_readers(codec: str, shape: list[int]) -> None:
    blob = empty_blob(codec, shape)
    with pytest.raises(BlobFormatError, match="has too many elements: its non-zero dims"):
        lsc_ort.decode(blob)
    with pytest.raises(BlobFormatError, match="too many elements"):
        lsc_ort.inspect(blob)
    with pytest.raises(ValueError, match="shape has too many elements"):
        native.native_validate(blob)
    for trans_b in (0, 1):
        with pytest.raises(ERRORS, match=r"LSCMatMul\] node 'lsc_mm': invalid weight blob: shape has too many"):
            session(matmul_model(blob, transB=trans_b))
    with pytest.raises(ERRORS, match=r"LSCConv\] node 'lsc_conv': invalid weight blob: shape has too many"):
        session(conv_model(blob))


# Empty tensors with a huge declared side: valid shapes, with no data to bound the work.
EMPTY_HUGE = [[0, 2**59], [2**59, 0], [2**40, 0], [0, 2**29, 2**30], [2**20, 0, 2**39]]


@pytest.mark.parametrize("codec", CODECS)
def test_empty_matrix_with_a_huge_side_is_handled_in_bounded_time(codec: str, tmp_path: Path) -> None:
    """The native validator used to loop once per declared row of an empty [R, 0] matrix. Both
    readers agree on each blob, and the check runs in a fresh process with a hang guard."""
    paths = []
    for i, shape in enumerate(EMPTY_HUGE):
        paths.append(str(tmp_path / f"{i}.blob"))
        Path(paths[-1]).write_bytes(empty_blob(codec, shape))
    code = f"""
import lsc_ort
from pathlib import Path
from lsc_ort import native
for path in {paths!r}:
    blob = Path(path).read_bytes()
    try:
        python = lsc_ort.decode(blob).shape
    except ValueError as error:
        python = type(error).__name__
    try:
        native_nnz = native.native_validate(blob)
    except ValueError as error:
        native_nnz = type(error).__name__
    print(python, native_nnz)
"""
    lines = run_python(code, timeout=120).split("\n")[: len(EMPTY_HUGE)]
    for shape, line in zip(EMPTY_HUGE, lines, strict=True):
        python, _, native_result = line.rpartition(" ")
        if python == "BlobFormatError":
            assert native_result == "ValueError", (shape, line)
        else:
            assert python == str(tuple(shape)) and native_result == "0", (shape, line)


@pytest.mark.parametrize("codec", CODECS)
def test_empty_matrix_with_a_huge_side_fails_session_creation_cleanly(codec: str) -> None:
    for shape in ([0, 2**59], [2**59, 0]):
        blob = empty_blob(codec, shape)
        for trans_b in (0, 1):
            message = r"LSCMatMul\] node 'lsc_mm': invalid weight blob: .*(rows|columns|section)"
            with pytest.raises(ERRORS, match=message):
                session(matmul_model(blob, transB=trans_b))


def backed_message(columns: int) -> str:
    return rf"LSCMatMul\] node 'lsc_mm': invalid weight blob: the weight's number of output columns is {columns}, " \
           r"more than a blob of \d+ bytes can back"


@pytest.mark.parametrize("codec", CODECS)
def test_declared_columns_must_be_backed_by_the_blob(codec: str) -> None:
    """A few hundred bytes declaring 2^28 output columns: before, the column index alone took
    2 GiB at session creation. Codecs whose data grow with the element count (dense, bitmap)
    cannot express such a blob and reject it by their layout."""
    blob = one_row_blob(codec, 2**28)
    try:
        native.native_validate(blob)
    except ValueError as error:
        assert "section" in str(error) or "bytes" in str(error) or "elements" in str(error)
        return
    with pytest.raises(ERRORS, match=backed_message(2**28)):
        session(matmul_model(blob))


@pytest.mark.parametrize("kept", [False, True])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_lsc_whole_matrix_block_over_a_huge_shape(kept: bool, trans_b: int) -> None:
    """One lsc block covering [2^15, 2^24] (a 192-byte all-zero blob, or one non-zero): the first
    run used to build a windowed layout of N/16 x K/32 cells."""
    shape = (2**24, 2**15) if trans_b else (2**15, 2**24)
    blob = lsc_whole_matrix_blob(*shape, kept=kept)
    assert native.native_validate(blob) == int(kept)
    with pytest.raises(ERRORS, match=backed_message(2**24)):
        session(matmul_model(blob, transB=trans_b))


def test_conv_taps_and_channels_must_be_backed_by_the_blob() -> None:
    from lsc_ort.format import ValueDType, pack_blob

    def whole(shape: list[int]) -> bytes:
        rows, cols = shape[0], int(np.prod(shape[1:]))
        return pack_blob(codec_id=5, dtype=ValueDType.FLOAT32, shape=shape, params=[rows, cols, 0, 0, 1],
                         sections=[b"\0", np.zeros(4, "<u8"), b"", b""], nnz=0)

    with pytest.raises(ERRORS, match=r"LSCConv\] node 'lsc_conv': the convolution's taps C \* kH \* kW is 16777216"):
        session(conv_model(whole([2, 1, 4096, 4096])))
    with pytest.raises(ERRORS, match=r"LSCConv\] node 'lsc_conv': invalid weight blob: the weight's number of output"):
        session(conv_model(whole([2**28, 1, 1, 1])))


@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer's quarantine keeps freed memory resident")
def test_huge_but_backed_shape_runs_with_memory_following_the_data() -> None:
    """[2^15, 2^20] over one empty block: within the free extent, so it loads; the windowed
    layout (2^26 cells for no data) is not built, and a run at batch 1 and 2 gives the bias."""
    code = """
import numpy as np
from tests.hostile import lsc_whole_matrix_blob, peak_rss_mib, reset_peak_rss, rss_mib
from tests.op_models import matmul_model, session
blob = lsc_whole_matrix_blob(2**15, 2**20)
bias = np.full(2**20, 0.5, np.float32)
model = matmul_model(blob, bias)
reset_peak_rss()
before = rss_mib()
sess = session(model)
for m in (1, 2):
    y = sess.run(None, {"A": np.ones((m, 2**15), np.float32)})[0]
    assert y.shape == (m, 2**20) and (y == 0.5).all()
print(peak_rss_mib() - before)
"""
    grown = float(run_python(code, timeout=300).split()[-1])
    # column index 8 MiB, two outputs and inputs 12 MiB; the skipped windowed layout was 64 MiB
    assert grown < 48, f"peak memory grew by {grown:.0f} MiB"


HOSTILE_DIMS = [0, 1, 3, 2**31, 2**32 + 1, 2**40, 2**62 - 1, 2**63, 2**64 - 1]


@pytest.mark.parametrize("codec", CODECS)
def test_hostile_dims_in_valid_blobs(codec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every dim of valid blobs set to values around the int64 and 2^62 limits (CRC refreshed):
    the readers agree, Python raises only BlobFormatError, and both run in time proportional to
    the blob (a 64 MiB budget keeps Python from allocating the dense tensors)."""
    import lsc_ort.codecs.base
    import lsc_ort.format

    monkeypatch.setattr(lsc_ort.codecs.base, "memory_budget", lambda: 64 << 20)
    monkeypatch.setattr(lsc_ort.format, "memory_budget", lambda: 64 << 20)
    for array in (sparse_array((6, 10), 0.8, seed=1), sparse_array((2, 3, 5), 0.5, seed=2)):
        blob = lsc_ort.encode(array, codec)
        for axis in range(array.ndim):
            for value in HOSTILE_DIMS:
                shape = list(array.shape)
                shape[axis] = value
                candidate = with_shape(blob, shape)
                try:
                    python: object = lsc_ort.decode(candidate).tobytes()
                except BlobFormatError as error:
                    python = error
                try:
                    native_result: object = native.native_decode(candidate)
                except ValueError as error:
                    native_result = error
                if isinstance(python, BlobFormatError) and "memory budget" in str(python):
                    continue  # Python's dense result alone is too large; the native reader may accept
                assert isinstance(python, Exception) == isinstance(native_result, Exception), (shape, python,
                                                                                               native_result)
                if not isinstance(python, Exception):
                    assert python == native_result, shape


@pytest.mark.skipif("mswu" not in CODECS, reason="no mswu codec")
@pytest.mark.parametrize("trans_b", [0, 1])
def test_mswu_pruned_whole_matrix_block_over_a_huge_shape(trans_b: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """One pruned mswu block covering [2, 2^24] (or its transpose): a few hundred bytes. Its
    unified layout (blocks two inputs tall) must not size its column index by the declared shape,
    nor the Python decoder build anything the size of the block."""
    import lsc_ort.codecs.base
    from lsc_ort.format import ValueDType, pack_blob

    shape = [2**24, 2] if trans_b else [2, 2**24]
    blob = pack_blob(codec_id=lsc_ort.codecs.get_codec("mswu").codec_id, dtype=ValueDType.FLOAT32, shape=shape,
                     params=[*shape, 0], sections=[b"\0", b"", b"", b"", b"", b""], nnz=0)
    assert native.native_validate(blob) == 0
    with pytest.raises(ERRORS, match=backed_message(2**24)):
        session(matmul_model(blob, transB=trans_b))
    monkeypatch.setattr(lsc_ort.codecs.base, "memory_budget", lambda: 1 << 30)
    assert not lsc_ort.decode(blob).any()
