"""LSCMatMul and LSCConv on mswu blobs against float64 numpy and onnxruntime's dense ops: every
unified block computed with one multiply, free weights on the ordinary path."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import lsc_ort
from lsc_ort import native
from lsc_ort.mswu import classify_blocks, project
from tests.hostile import corrupt_randomly, refresh_crc
from tests.op_models import assert_close, conv_model, dense_session, matmul_model, reference_conv, session
from tests.test_ops_conv import CASES, ids

pytestmark = pytest.mark.skipif(not native.library_available(), reason="native library not built")

ERRORS = (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidArgument,
          ort.capi.onnxruntime_pybind11_state.RuntimeException)
BATCHES = [1, 2, 3, 5, 12, 13, 64, 65, 130]


def unified(shape: tuple[int, ...], block: Any, sparsity: float = 0.5, unify: float = 0.4, seed: int = 0,
            dtype: Any = np.float32) -> np.ndarray:
    weight = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return project(weight, block, sparsity, unify).weight


def reference(a: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, alpha: float = 1.0) -> np.ndarray:
    y = alpha * (a.astype(np.float64) @ w.astype(np.float64))
    return y + bias if bias is not None else y


# (stored weight shape, block, transB): blocks along K (one multiply each), along N, 2-D, edges.
MATMUL_CASES = [
    ((37, 53), (4, 1), 0), ((53, 37), (1, 4), 1), ((64, 48), (2, 2), 0), ((48, 64), (1, 4), 0),
    ((130, 70), (8, 1), 0), ((70, 130), (1, 70), 1), ((1, 5), (1, 4), 0), ((300, 100), (64, 1), 0),
    ((100, 300), (1, 100), 1), ((33, 65), (3, 5), 1), ((768, 96), (4, 1), 0),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape,block,trans_b", MATMUL_CASES, ids=str)
def test_matmul_matches_numpy(shape: tuple[int, int], block: tuple[int, int], trans_b: int, threads: int) -> None:
    rng = np.random.default_rng(shape[0] + threads)
    w = unified(shape, block, seed=shape[1])
    blob = lsc_ort.encode(w, "mswu", block=block)
    weight = w.T if trans_b else w
    bias = rng.standard_normal(weight.shape[1]).astype(np.float32)
    sess = session(matmul_model(blob, bias, alpha=0.5, transB=trans_b), threads)
    for m in BATCHES:
        a = rng.standard_normal((m, weight.shape[0])).astype(np.float32)
        assert_close(sess.run(None, {"A": a})[0], reference(a, weight, bias, 0.5))


@pytest.mark.parametrize("threads", [1, 2])
def test_batches_run_the_unified_blocks_as_plain_nonzeros(threads: int) -> None:
    """From 5 rows on, an mswu weight computes exactly as the same weight stored as lsc (every
    non-zero on the batch kernels); up to 4 rows its unified blocks take one multiply each."""
    rng = np.random.default_rng(11)
    w = unified((256, 96), (8, 1), 0.5, 0.4, seed=3)
    bias = rng.standard_normal(96).astype(np.float32)
    mswu = session(matmul_model(lsc_ort.encode(w, "mswu", block=(8, 1)), bias), threads)
    plain = session(matmul_model(lsc_ort.encode(w, "lsc"), bias), threads)
    for m in (1, 4, 5, 12, 13, 64, 200):
        a = rng.standard_normal((m, 256)).astype(np.float32)
        got, expected = mswu.run(None, {"A": a})[0], plain.run(None, {"A": a})[0]
        if m > 4:
            np.testing.assert_array_equal(got, expected)
        assert_close(got, reference(a, w, bias))


def test_matmul_matches_onnxruntime_gemm_and_broadcasts() -> None:
    rng = np.random.default_rng(6)
    w = unified((40, 96), (1, 4), 0.6, 0.3)  # PyTorch Linear [out, in], 1x4 blocks along the inputs
    bias = rng.standard_normal(40).astype(np.float32)
    gemm = dense_session(helper.make_node("Gemm", ["A", "W", "b"], ["Y"], transB=1),
                         [numpy_helper.from_array(w, "W"), numpy_helper.from_array(bias, "b")], "A")
    lsc = session(matmul_model(lsc_ort.encode(w, "mswu"), bias, transB=1))
    for m in (1, 3, 64, 200):
        a = rng.standard_normal((m, 96)).astype(np.float32)
        assert_close(lsc.run(None, {"A": a})[0], gemm.run(None, {"A": a})[0].astype(np.float64))
    a = rng.standard_normal((2, 3, 96)).astype(np.float32)
    assert_close(lsc.run(None, {"A": a})[0], reference(a, w.T, bias))


@pytest.mark.parametrize("dtype", [np.float16, np.int8])
def test_stored_value_types(dtype: Any) -> None:
    rng = np.random.default_rng(8)
    if dtype == np.int8:
        stored = (unified((40, 24), (4, 1)) * 20).round().clip(-127, 127).astype(np.int8)
        scale = 0.03125
    else:
        stored, scale = unified((40, 24), (4, 1), dtype=np.float16), None
    blob = lsc_ort.encode(stored, "mswu", scale=scale, block=(4, 1))
    assert lsc_ort.inspect(blob)["unified_blocks"] > 0
    real = stored.astype(np.float64) * (scale or 1.0)
    sess = session(matmul_model(blob))
    for m in (1, 20, 70):
        a = rng.standard_normal((m, 40)).astype(np.float32)
        assert_close(sess.run(None, {"A": a})[0], reference(a, real))


def test_float16_activations() -> None:
    rng = np.random.default_rng(9)
    w = unified((64, 32), (4, 1))
    sess = session(matmul_model(lsc_ort.encode(w, "mswu"), dtype=np.float16))
    for m in (1, 40, 100):
        a = rng.standard_normal((m, 64)).astype(np.float16)
        y = sess.run(None, {"A": a})[0]
        assert y.dtype == np.float16
        assert_close(y, reference(a.astype(np.float32), w), tolerance=2e-3)
    conv_w = unified((8, 4, 3, 3), "kernel")
    x = rng.standard_normal((2, 4, 10, 20)).astype(np.float16)
    y = session(conv_model(lsc_ort.encode(conv_w, "mswu"), dtype=np.float16, pads=[1, 1, 1, 1])).run(None, {"X": x})[0]
    assert y.dtype == np.float16
    assert_close(y, reference_conv(x.astype(np.float32), conv_w, None, pads=[1, 1, 1, 1]), tolerance=2e-3)


def test_weight_blob_as_runtime_input() -> None:
    w = unified((30, 20), (1, 2))
    sess = session(matmul_model(b"", blob_as_input=True, transB=1))
    blob = np.frombuffer(lsc_ort.encode(w, "mswu"), np.uint8)
    for m in (2, 90):
        a = np.random.default_rng(1).standard_normal((m, 20)).astype(np.float32)
        assert_close(sess.run(None, {"A": a, "W": blob})[0], reference(a, w.T))


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_conv_matches_numpy(case: tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]) -> None:
    x_shape, w_shape, attributes = case
    rng = np.random.default_rng(x_shape[1] * 31 + w_shape[0])
    blocks = ["kernel", (1, 4)] if np.prod(w_shape[2:]) > 1 else [(1, 4), (2, 1)]
    for block in blocks:
        w = unified(w_shape, block, seed=w_shape[0])
        blob = lsc_ort.encode(w, "mswu", **({"block": block} if block != "kernel" else {}))
        bias = rng.standard_normal(w_shape[0]).astype(np.float32)
        x = rng.standard_normal(x_shape).astype(np.float32)
        y = session(conv_model(blob, bias, **attributes), 2).run(None, {"X": x})[0]
        assert_close(y, reference_conv(x, w, bias, **attributes))


@pytest.mark.parametrize("residual", [False, True])
def test_conv_fused_relu_and_residual_apply_after_the_unified_blocks(residual: bool) -> None:
    # The unified blocks are added after the free weights' product: the fused residual and
    # ReLU must see the whole sum, not the free part alone.
    rng = np.random.default_rng(5)
    w = unified((24, 8, 3, 3), "kernel", 0.4, 0.5, seed=3)
    bias = rng.standard_normal(24).astype(np.float32)
    x = rng.standard_normal((2, 8, 9, 9)).astype(np.float32)
    z = rng.standard_normal((2, 24, 9, 9)).astype(np.float32)
    blob = lsc_ort.encode(w, "mswu")
    assert lsc_ort.inspect(blob)["unified_blocks"] > 0
    model = conv_model(blob, bias, residual=residual, pads=[1, 1, 1, 1], activation="Relu")
    feeds = {"X": x, "Z": z} if residual else {"X": x}
    expected = reference_conv(x, w, bias, pads=[1, 1, 1, 1]) + (z if residual else 0.0)
    assert_close(session(model, 2).run(None, feeds)[0], np.maximum(expected, 0.0))


def test_conv_matches_onnxruntime_conv() -> None:
    rng = np.random.default_rng(12)
    w = unified((32, 16, 3, 3), (1, 4), 0.6, 0.3)
    x = rng.standard_normal((2, 16, 20, 20)).astype(np.float32)
    dense = dense_session(helper.make_node("Conv", ["X", "W"], ["Y"], pads=[1, 1, 1, 1]),
                          [numpy_helper.from_array(w, "W")], "X")
    y = session(conv_model(lsc_ort.encode(w, "mswu"), pads=[1, 1, 1, 1]), 2).run(None, {"X": x})[0]
    assert_close(y, dense.run(None, {"X": x})[0].astype(np.float64))


def test_every_kernel_variant(isa: str) -> None:
    rng = np.random.default_rng(10)
    for shape, block, trans_b in [((100, 37), (4, 1), 0), ((64, 300), (1, 4), 1), ((20, 50), (1, 50), 1)]:
        w = unified(shape, block, 0.5, 0.4, seed=shape[1])
        weight = w.T if trans_b else w
        bias = rng.standard_normal(weight.shape[1]).astype(np.float32)
        sess = session(matmul_model(lsc_ort.encode(w, "mswu", block=block), bias, alpha=1.5, transB=trans_b), 2)
        for m in (1, 3, 7, 33, 100):
            a = rng.standard_normal((m, weight.shape[0])).astype(np.float32)
            assert_close(sess.run(None, {"A": a})[0], reference(a, weight, bias, 1.5))
    w = unified((12, 6, 5, 5), "kernel")
    x = rng.standard_normal((2, 6, 11, 23)).astype(np.float32)
    y = session(conv_model(lsc_ort.encode(w, "mswu"), strides=[1, 2]), 2).run(None, {"X": x})[0]
    assert_close(y, reference_conv(x, w, None, strides=[1, 2]))


def test_one_multiply_per_unified_block() -> None:
    """The native layout: one entry (multiply) per unified block along the reduction axis, free
    non-zeros as plain entries, signed sums shared by every block with the same inputs and signs."""
    w = unified((768, 96), (4, 1), 0.6, 0.3)
    blob = lsc_ort.encode(w, "mswu")
    info = lsc_ort.inspect(blob)
    stats = native.layout_stats(blob, k_is_row=True)  # MatMul [K, N]: 4x1 blocks run along K
    assert stats["unified_blocks"] == stats["unified_entries"] == info["unified_blocks"]
    assert stats["plain_nonzeros"] == info["free_nonzeros"]
    assert stats["signed_sums"] <= (768 // 4) * 8  # at most 8 sign patterns (up to sign) per block row
    assert stats["plain_nonzeros"] + stats["unified_entries"] == info["multiplies"]
    # Transposed (as Gemm transB=1): the blocks run along the outputs and are plain non-zeros.
    across = native.layout_stats(blob, k_is_row=False)
    assert across["unified_entries"] == 0 and across["plain_nonzeros"] == np.count_nonzero(w)
    # 2x2 blocks: one multiply per output column of a block (its two inputs summed first).
    square = unified((64, 64), (2, 2))
    labels = classify_blocks(square, (2, 2))
    stats = native.layout_stats(lsc_ort.encode(square, "mswu", block=(2, 2)), k_is_row=True)
    assert stats["unified_entries"] == 2 * int(np.count_nonzero(labels == 1))


def test_corrupted_mswu_blob_fails_with_the_node_name() -> None:
    blob = bytearray(lsc_ort.encode(unified((40, 30), (1, 4)), "mswu"))
    params = 40 + 16
    blob[params + 16:params + 24] = struct.pack("<q", 5)
    with pytest.raises(ERRORS, match=r"LSCMatMul\] node 'lsc_mm'.*mswu: param free_coding=5"):
        session(matmul_model(refresh_crc(blob)))
    with pytest.raises(ERRORS, match=r"LSCConv\] node 'lsc_conv'.*mswu: param free_coding=5"):
        session(conv_model(refresh_crc(blob)))


def test_random_structural_corruptions_never_crash() -> None:
    """CRC-valid corrupted unified blobs: the session fails cleanly or computes what the Python
    decoder decodes from the same blob."""
    for trans_b, shape, block in [(0, (24, 20), (4, 1)), (1, (20, 24), (1, 4))]:
        weight = unified(shape, block, 0.4, 0.4, seed=3)
        blob = lsc_ort.encode(weight, "mswu", block=block)
        a = np.random.default_rng(0).standard_normal((3, 24)).astype(np.float32)
        big = np.random.default_rng(1).standard_normal((70, 24)).astype(np.float32)
        rng = np.random.default_rng(5 + trans_b)
        for _ in range(60):
            candidate = corrupt_randomly(blob, rng, 2)
            try:
                decoded = lsc_ort.decode(candidate)
            except ValueError:
                with pytest.raises(ERRORS):
                    session(matmul_model(candidate, transB=trans_b)).run(None, {"A": a})
                continue
            if decoded.ndim != 2 or decoded.shape[1 - trans_b] != 24 or not np.isfinite(decoded).all():
                continue
            sess = session(matmul_model(candidate, transB=trans_b))
            matrix = decoded.T if trans_b else decoded
            for x in (a, big):
                np.testing.assert_allclose(sess.run(None, {"A": x})[0], x.astype(np.float64) @ matrix,
                                           rtol=1e-4, atol=1e-4)
