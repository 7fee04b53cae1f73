"""Non-finite values follow structural-zero semantics in every native kernel path.

Stored zeros are absent, as in scipy.sparse and torch.sparse: a NaN or Inf activation reaches only
the outputs it meets through a stored weight (a non-zero bit pattern, ``-0.0`` included), and
stored non-finite weights propagate per IEEE (``Inf * 0`` is NaN, padding counts as zeros). This
is the documented contract (``lsc_ort/ops.py``, ``docs/kernels.md``); dense MatMul and Conv give
NaN wherever a NaN meets a zero weight instead. Every kernel variant and path is pinned here:
the sliced (1-2 rows), windowed (3-12 rows, AVX-512) and tiled layouts for LSCMatMul; padded,
in-place, strided, 1x1, grouped and 1-D convolutions on wide and narrow maps for LSCConv; mswu's
unified blocks; float32 and float16 activations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import lsc_ort
from lsc_ort import native
from tests.conftest import sparse_array
from tests.op_models import assert_close, conv_model, matmul_model, session

pytestmark = pytest.mark.skipif(not native.library_available(), reason="native library not built")

# Batch sizes covering the sliced layout (1-2 rows), the windowed one (up to 12 rows on AVX-512)
# and the tiled one (a partial tile, a full one and more).
BATCHES = [1, 2, 3, 5, 12, 13, 40, 70]


def assert_same(actual: np.ndarray, expected: np.ndarray, tolerance: float = 1e-4) -> None:
    """NaN where ``expected`` is NaN, the same infinities, and close finite values."""
    actual = actual.astype(np.float64)
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg="NaN positions differ")
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected), err_msg="+Inf positions differ")
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected), err_msg="-Inf positions differ")
    finite = np.isfinite(expected)
    assert_close(actual[finite], expected[finite], tolerance)


def stored(weight: np.ndarray) -> np.ndarray:
    """Where ``weight`` stores a value: a non-zero bit pattern (so ``-0.0`` is stored)."""
    return weight.view({2: np.uint16, 4: np.uint32}[weight.itemsize]) != 0


def structural_matmul(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Y[m, n] = sum of A[m, k] * W[k, n] over the stored weights only, in float64."""
    with np.errstate(invalid="ignore", over="ignore"):
        terms = np.where(stored(w)[None], a.astype(np.float64)[:, :, None] * w.astype(np.float64)[None], 0.0)
        return terms.sum(axis=1)


def weight_with_structure(k: int, n: int, seed: int) -> np.ndarray:
    """A sparse weight with empty columns, empty rows and a stored -0.0."""
    w = sparse_array((k, n), 0.7, seed=seed)
    w[:, 3] = 0.0
    w[:, n - 5 :] = 0.0
    w[7] = 0.0
    w[0, 0] = -0.0
    w[0, 1] = 0.0
    return w


def poisoned(shape: tuple[int, ...], seed: int, dtype: Any = np.float32) -> np.ndarray:
    """Random activations with NaN, +Inf and -Inf at spread positions (the first row's and
    first channel's among them)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=max(3, flat.size // 40), replace=False)
    flat[picks[0::3]] = np.nan
    flat[picks[1::3]] = np.inf
    flat[picks[2::3]] = -np.inf
    flat[0] = np.nan
    return x


def test_a_nan_reaches_only_outputs_with_a_stored_weight_in_its_row(isa: str) -> None:
    """The issue's case: one NaN activation, a weight whose columns 10..19 store nothing in its
    row. The windowed kernel used to multiply padded lanes (value 0) by the NaN."""
    w = np.zeros((40, 20), np.float32)
    w[0, :10] = 1.0
    w[1:, :] = sparse_array((39, 20), 0.5)
    sess = session(matmul_model(lsc_ort.encode(w, "lsc")))
    for m in BATCHES:
        a = np.ones((m, 40), np.float32)
        a[:, 0] = np.nan
        y = sess.run(None, {"A": a})[0]
        assert np.isnan(y[:, :10]).all() and np.isfinite(y[:, 10:]).all(), m


@pytest.mark.parametrize("threads", [1, 2])
def test_matmul_every_path(isa: str, threads: int) -> None:
    w = weight_with_structure(40, 37, seed=1)
    bias = np.random.default_rng(2).standard_normal(37).astype(np.float32)
    for trans_b, alpha in [(0, 1.0), (1, 0.5)]:
        stored_w = w.T.copy() if trans_b else w
        sess = session(matmul_model(lsc_ort.encode(stored_w, "lsc"), bias, alpha=alpha, transB=trans_b), threads)
        for m in BATCHES:
            a = poisoned((m, 40), seed=m)
            assert_same(sess.run(None, {"A": a})[0], alpha * structural_matmul(a, w) + bias)


@pytest.mark.parametrize("codec", lsc_ort.available_codecs())
def test_matmul_every_codec_stores_the_same_structure(codec: str) -> None:
    w = weight_with_structure(40, 37, seed=3)
    sess = session(matmul_model(lsc_ort.encode(w, codec)))
    for m in (1, 2, 40):
        a = poisoned((m, 40), seed=m + 1)
        assert_same(sess.run(None, {"A": a})[0], structural_matmul(a, w))


def unified_weight(k: int, n: int, block: tuple[int, int], seed: int) -> np.ndarray:
    """A weight of mswu blocks: unified (one magnitude, random signs), pruned and free ones."""
    rng = np.random.default_rng(seed)
    br, bc = block
    w = np.zeros((k, n), np.float32)
    for r in range(0, k, br):
        for c in range(0, n, bc):
            kind = rng.integers(0, 3)
            shape = w[r : r + br, c : c + bc].shape
            if kind == 0:
                w[r : r + br, c : c + bc] = rng.choice([-0.5, 0.5], size=shape)
            elif kind == 1:
                w[r : r + br, c : c + bc] = sparse_array(shape, 0.5, seed=r * n + c)
    return w


@pytest.mark.skipif("mswu" not in lsc_ort.available_codecs(), reason="no mswu codec")
@pytest.mark.parametrize("block", [(4, 1), (2, 2), (1, 4)])
def test_matmul_mswu_unified_blocks(isa: str, block: tuple[int, int]) -> None:
    """Every element of a unified block is stored: the block's signed sum of inputs carries a NaN
    or Inf to all of its columns, as the per-element sum does."""
    w = unified_weight(40, 37, block, seed=block[0])
    for trans_b in (0, 1):
        blob = lsc_ort.encode(w.T.copy() if trans_b else w, "mswu", block=block[::-1] if trans_b else block)
        if block[0] > 1 and not trans_b:
            assert native.layout_stats(blob, k_is_row=True)["unified_blocks"] > 0
        sess = session(matmul_model(blob, transB=trans_b))
        for m in BATCHES:
            a = poisoned((m, 40), seed=m)
            assert_same(sess.run(None, {"A": a})[0], structural_matmul(a, w))


@pytest.mark.skipif("mswu" not in lsc_ort.available_codecs(), reason="no mswu codec")
def test_conv_mswu_unified_blocks() -> None:
    w = unified_weight(10, 54, (1, 9), seed=3).reshape(10, 6, 3, 3)
    for shape in [(2, 6, 9, 20), (2, 6, 9, 9)]:  # a wide map and a narrow one
        x = poisoned(shape, seed=shape[-1])
        y = session(conv_model(lsc_ort.encode(w, "mswu", block=(1, 9)), pads=[1, 1, 1, 1])).run(None, {"X": x})[0]
        assert_same(y, structural_conv(x, w, pads=(1, 1, 1, 1)))


def test_matmul_stored_non_finite_weights_propagate(isa: str) -> None:
    """A stored Inf times a zero activation is NaN; a stored NaN poisons its column."""
    w = weight_with_structure(40, 37, seed=4)
    w[2, 5], w[9, 6], w[11, 8] = np.inf, np.nan, -np.inf
    sess = session(matmul_model(lsc_ort.encode(w, "lsc")))
    for m in BATCHES:
        a = np.random.default_rng(m).standard_normal((m, 40)).astype(np.float32)
        a[0, 2] = 0.0  # Inf * 0 in row 0
        y = sess.run(None, {"A": a})[0]
        assert_same(y, structural_matmul(a, w))
        assert np.isnan(y[0, 5]) and np.isnan(y[:, 6]).all()


def test_matmul_float16_activations(isa: str) -> None:
    w = weight_with_structure(40, 37, seed=5)
    sess = session(matmul_model(lsc_ort.encode(w, "lsc"), dtype=np.float16))
    for m in BATCHES:
        a = poisoned((m, 40), seed=m, dtype=np.float16)
        y = sess.run(None, {"A": a})[0]
        assert y.dtype == np.float16
        assert_same(y, structural_matmul(a.astype(np.float32), w), tolerance=2e-3)


def structural_conv(x: np.ndarray, w: np.ndarray, strides: tuple[int, int] = (1, 1), pads: tuple[int, ...] = (0,) * 4,
                    group: int = 1) -> np.ndarray:
    """ONNX Conv (2-D, NCHW) summing over the stored weights only, in float64; padding is zeros."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    top, left, bottom, right = pads
    padded = np.zeros((n, c, h + top + bottom, wd + left + right))
    padded[:, :, top : top + h, left : left + wd] = x
    oh = (h + top + bottom - kh) // strides[0] + 1
    ow = (wd + left + right - kw) // strides[1] + 1
    y = np.zeros((n, m, oh, ow))
    per_group = m // group
    with np.errstate(invalid="ignore", over="ignore"):
        for mm, cc, i, j in zip(*np.nonzero(stored(w)), strict=True):
            channel = mm // per_group * cg + cc
            patch = padded[:, channel, i : i + oh * strides[0] : strides[0], j : j + ow * strides[1] : strides[1]]
            y[:, mm] += np.float64(w[mm, cc, i, j]) * patch
    return y


# (X shape, weight shape, attributes): wide maps, and narrow ones whose tiles of virtual positions
# span several output rows; padded phase planes, or X itself for an unpadded 1x1 conv.
CONVS: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ((2, 6, 9, 20), (10, 6, 3, 3), {"pads": (1, 1, 1, 1)}),  # padded planes
    ((1, 6, 9, 22), (10, 6, 3, 3), {}),  # unpadded
    ((1, 6, 9, 40), (10, 6, 3, 3), {"strides": (2, 2), "pads": (1, 0, 0, 1)}),  # stride phases
    ((2, 6, 9, 9), (10, 6, 3, 3), {"pads": (1, 1, 1, 1)}),  # narrow map
    ((1, 6, 7, 7), (10, 6, 3, 3), {"strides": (2, 2)}),  # narrow map, strided
    ((1, 6, 5, 20), (10, 6, 1, 1), {}),  # 1x1 on X itself
    ((1, 6, 9, 20), (10, 3, 3, 3), {"group": 2, "pads": (1, 1, 1, 1)}),  # grouped
    ((1, 6, 9, 9), (6, 1, 3, 3), {"group": 6}),  # depthwise, narrow map
]


def conv_weight(shape: tuple[int, ...], seed: int) -> np.ndarray:
    w = sparse_array(shape, 0.7, seed=seed)
    w[1] = 0.0  # an output channel storing nothing
    w[:, 0, 0, 0] = 0.0
    w[0, 0, 0, 0] = -0.0
    return w


def run_conv(case: tuple[Any, ...], dtype: Any = np.float32, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    x_shape, w_shape, attributes = case
    w = conv_weight(w_shape, seed=len(x_shape) + w_shape[0])
    x = poisoned(x_shape, seed=w_shape[1], dtype=dtype)
    onnx_attributes = {k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items()}
    y = session(conv_model(lsc_ort.encode(w, "lsc"), dtype=dtype, **onnx_attributes), threads).run(None, {"X": x})[0]
    return y, structural_conv(x.astype(np.float32), w, **attributes)


@pytest.mark.parametrize("case", CONVS, ids=[str(c[2]) + str(c[0]) for c in CONVS])
def test_conv_every_path(case: tuple[Any, ...], isa: str) -> None:
    for threads in (1, 2):
        y, expected = run_conv(case, threads=threads)
        assert_same(y, expected)


@pytest.mark.parametrize("case", [CONVS[0], CONVS[3]], ids=["wide", "narrow"])
def test_conv_float16_activations(case: tuple[Any, ...]) -> None:
    y, expected = run_conv(case, dtype=np.float16)
    assert y.dtype == np.float16
    assert_same(y, expected, tolerance=2e-3)


def test_conv_one_d() -> None:
    w = sparse_array((5, 4, 3), 0.6, seed=6)
    w[:, 0, :] = 0.0
    x = poisoned((2, 4, 30), seed=7)
    y = session(conv_model(lsc_ort.encode(w, "lsc"), pads=[1, 1])).run(None, {"X": x})[0]
    expected = structural_conv(x[:, :, None, :], w[:, :, None, :], pads=(0, 1, 0, 1))[:, :, 0, :]
    assert_same(y, expected)


def test_conv_stored_infinite_weight_meets_padding_as_zero() -> None:
    """Padding is zeros: a stored Inf weight on a padded position gives NaN (Inf * 0)."""
    w = conv_weight((4, 2, 3, 3), seed=8)
    w[2, 0, 0, 0] = np.inf
    for x_shape in [(1, 2, 6, 20), (1, 2, 6, 6)]:  # a wide map and a narrow one
        x = np.random.default_rng(9).standard_normal(x_shape).astype(np.float32)
        y = session(conv_model(lsc_ort.encode(w, "lsc"), pads=[1, 1, 1, 1])).run(None, {"X": x})[0]
        expected = structural_conv(x, w, pads=(1, 1, 1, 1))
        assert_same(y, expected)
        assert np.isnan(y[0, 2, 0, 0]) and np.isinf(y[0, 2, 1:, 1:]).all()
