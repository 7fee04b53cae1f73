"""LSCMatMul against numpy (float64) and onnxruntime's dense MatMul / Gemm."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

import lsc_ort
import lsc_ort.reference
from lsc_ort import native
from tests.conftest import sparse_array
from tests.op_models import assert_close, dense_session, matmul_model, session

pytestmark = pytest.mark.skipif(not native.library_available(), reason="native library not built")

CODECS = lsc_ort.available_codecs()
BATCHES = [1, 2, 3, 4, 5, 16, 63, 64, 65, 130]


def reference(a: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, alpha: float = 1.0) -> np.ndarray:
    y = alpha * (a.astype(np.float64) @ w.astype(np.float64))
    return y + bias if bias is not None else y


def run(sess, a: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    return sess.run(None, {"A": a})[0]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_and_sparsity(codec: str, sparsity: float, threads: int) -> None:
    rng = np.random.default_rng(int(sparsity * 100) + threads)
    for k, n in [(37, 53), (130, 70)]:
        w = sparse_array((k, n), sparsity, seed=k)
        sess = session(matmul_model(lsc_ort.encode(w, codec)), threads)
        for m in BATCHES:
            a = rng.standard_normal((m, k)).astype(np.float32)
            assert_close(run(sess, a), reference(a, w))


@pytest.mark.parametrize("k,n", [(1, 1), (1, 4096), (4096, 1), (7, 3), (3, 7), (33, 17), (256, 256),
                                 (4096, 24), (24, 4096), (1000, 999)])
def test_shapes(k: int, n: int) -> None:
    rng = np.random.default_rng(k * 7 + n)
    w = sparse_array((k, n), 0.9, seed=k + n)
    sess = session(matmul_model(lsc_ort.encode(w, "lsc")), 2)
    for m in (1, 4, 70, 256):
        a = rng.standard_normal((m, k)).astype(np.float32)
        assert_close(run(sess, a), reference(a, w))


@pytest.mark.parametrize("shape", [(19,), (1, 19), (6, 19), (2, 3, 19), (2, 3, 5, 19), (0, 19), (2, 0, 19)])
def test_rank_one_to_four_inputs_broadcast(shape: tuple[int, ...]) -> None:
    w = sparse_array((19, 11), 0.8)
    a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = run(session(matmul_model(lsc_ort.encode(w, "lsc"))), a)
    assert y.shape == (*shape[:-1], 11)
    assert_close(y, reference(a, w))


@pytest.mark.parametrize("transposed", [0, 1])
def test_alpha_bias_and_transposed_weight(transposed: int) -> None:
    rng = np.random.default_rng(5)
    w = sparse_array((48, 30), 0.85)
    bias = rng.standard_normal(30).astype(np.float32)
    stored = w.T.copy() if transposed else w
    sess = session(matmul_model(lsc_ort.encode(stored, "lsc"), bias, alpha=0.25, transB=transposed))
    for m in (1, 9, 100):
        a = rng.standard_normal((m, 48)).astype(np.float32)
        assert_close(run(sess, a), reference(a, w, bias.astype(np.float64), 0.25))


def test_matches_onnxruntime_gemm() -> None:
    rng = np.random.default_rng(6)
    w = sparse_array((96, 40), 0.9)
    bias = rng.standard_normal(40).astype(np.float32)
    gemm = dense_session(helper.make_node("Gemm", ["A", "W", "b"], ["Y"], alpha=2.0, transB=1),
                         [numpy_helper.from_array(w.T.copy(), "W"), numpy_helper.from_array(bias, "b")], "A")
    lsc = session(matmul_model(lsc_ort.encode(w.T.copy(), "lsc"), bias, alpha=2.0, transB=1))
    for m in (1, 3, 64, 200):
        a = rng.standard_normal((m, 96)).astype(np.float32)
        assert_close(run(lsc, a), gemm.run(None, {"A": a})[0].astype(np.float64))


def test_matches_onnxruntime_matmul_on_large_layer() -> None:
    rng = np.random.default_rng(7)
    w = sparse_array((768, 3072), 0.9)
    dense = dense_session(helper.make_node("MatMul", ["A", "W"], ["Y"]), [numpy_helper.from_array(w, "W")], "A")
    lsc = session(matmul_model(lsc_ort.encode(w, "lsc")), 2)
    for m in (1, 8, 128):
        a = rng.standard_normal((m, 768)).astype(np.float32)
        assert_close(run(lsc, a), dense.run(None, {"A": a})[0].astype(np.float64))


@pytest.mark.parametrize("threads", [1, 2])
def test_batched_product_over_several_spans(threads: int) -> None:
    """N wider than one span of partial sums: each tile's transposed activations serve every span."""
    rng = np.random.default_rng(17)
    w = sparse_array((200, 2100), 0.9)
    bias = rng.standard_normal(2100).astype(np.float32)
    sess = session(matmul_model(lsc_ort.encode(w, "lsc"), bias), threads)
    for m in (13, 40, 128, 150):
        a = rng.standard_normal((m, 200)).astype(np.float32)
        assert_close(run(sess, a), reference(a, w, bias.astype(np.float64)))


@pytest.mark.parametrize("dtype", [np.float16, np.int8])
def test_stored_value_types(dtype: type, gemv: str) -> None:
    rng = np.random.default_rng(8)
    stored = sparse_array((40, 24), 0.8, dtype)
    scale = 0.03125 if dtype == np.int8 else None
    blob = lsc_ort.encode(stored, "lsc", scale=scale)
    real = stored.astype(np.float64) * (scale or 1.0)
    sess = session(matmul_model(blob))
    for m in (1, 20):
        a = rng.standard_normal((m, 40)).astype(np.float32)
        assert_close(run(sess, a), reference(a, real))


def test_float16_activations() -> None:
    rng = np.random.default_rng(9)
    w = sparse_array((64, 32), 0.8)
    bias = rng.standard_normal(32).astype(np.float32)
    sess = session(matmul_model(lsc_ort.encode(w, "lsc"), bias, dtype=np.float16))
    for m in (1, 40):
        a = rng.standard_normal((m, 64)).astype(np.float16)
        y = run(sess, a)
        assert y.dtype == np.float16
        expected = reference(a.astype(np.float32), w, bias.astype(np.float16).astype(np.float64))
        assert_close(y, expected, tolerance=2e-3)


def test_weight_blob_as_runtime_input() -> None:
    w = sparse_array((30, 20), 0.9)
    sess = session(matmul_model(b"", blob_as_input=True))
    a = np.random.default_rng(1).standard_normal((5, 30)).astype(np.float32)
    y = sess.run(None, {"A": a, "W": np.frombuffer(lsc_ort.encode(w, "lsc"), np.uint8)})[0]
    assert_close(y, reference(a, w))


def test_every_kernel_variant(isa: str) -> None:
    assert native.kernel_name().endswith(isa)
    rng = np.random.default_rng(10)
    for k, n, sparsity in [(100, 37, 0.9), (64, 300, 0.5), (3, 5, 0.0)]:
        w = sparse_array((k, n), sparsity, seed=n)
        bias = rng.standard_normal(n).astype(np.float32)
        sess = session(matmul_model(lsc_ort.encode(w, "lsc"), bias, alpha=1.5), 2)
        for m in (1, 3, 7, 33, 100):
            a = rng.standard_normal((m, k)).astype(np.float32)
            assert_close(run(sess, a), reference(a, w, bias, 1.5))


@pytest.mark.parametrize("codec", CODECS)
def test_one_or_two_rows_on_either_layout(codec: str, gemv: str, isa: str) -> None:
    """One or two rows on every GEMV layout (sliced, windowed slices, windowed), every codec and
    variant: alpha, bias, Relu, weights shorter and taller than a window, narrower than a group."""
    rng = np.random.default_rng(31)
    for k, n in [(20, 5), (37, 5), (130, 70), (700, 33)]:
        w = sparse_array((k, n), 0.85, seed=k)
        bias = rng.standard_normal(n).astype(np.float32)
        sess = session(matmul_model(lsc_ort.encode(w, codec), bias, alpha=0.75, activation="Relu"), 2)
        for m in (1, 2):
            a = rng.standard_normal((m, k)).astype(np.float32)
            assert_close(run(sess, a), np.maximum(reference(a, w, bias, 0.75), 0.0))


@pytest.mark.parametrize("m", [1, 2, 5, 130])
def test_non_finite_activation_reaches_only_stored_weights(m: int, gemv: str) -> None:
    """NaN / inf in A reach exactly the columns whose stored (non-zero) weights read them, on the
    sliced (1-2 rows), windowed and tiled paths."""
    w = sparse_array((300, 70), 0.9, seed=3)
    a = np.ones((m, 300), np.float32)
    a[:, 7] = np.nan
    a[-1, 250] = np.inf
    y = run(session(matmul_model(lsc_ort.encode(w, "lsc"))), a)
    with np.errstate(invalid="ignore"):
        expected = reference(np.where(np.isfinite(a), a, 0), w)
    expected[:, w[7] != 0] = np.nan
    inf_columns = (w[250] != 0) & (w[7] == 0)
    assert np.array_equal(np.isnan(y), np.isnan(expected))
    assert np.all(np.isinf(y[-1, inf_columns]))
    finite = np.isfinite(expected) & ~np.isinf(y)
    assert_close(np.where(finite, y, 0), np.where(finite, expected, 0))


def _activated(y: np.ndarray, activation: str) -> np.ndarray:
    from lsc_ort.reference import gelu

    return np.maximum(y, 0.0) if activation == "Relu" else gelu(y).astype(np.float64)


@pytest.mark.parametrize("activation", ["Relu", "Gelu"])
def test_activation_on_every_path_and_variant(activation: str, isa: str) -> None:
    """activation(alpha * A W + bias) on the sliced, windowed and tiled paths, with values far
    into both tails of Gelu (|y| up to about 30)."""
    rng = np.random.default_rng(21)
    w = sparse_array((96, 70), 0.8, seed=3) * 3
    bias = rng.standard_normal(70).astype(np.float32)
    sess = session(matmul_model(lsc_ort.encode(w, "lsc"), bias, alpha=0.5, activation=activation), 2)
    for m in (1, 2, 5, 64, 130):
        a = rng.standard_normal((m, 96)).astype(np.float32)
        assert_close(run(sess, a), _activated(reference(a, w, bias, 0.5), activation), tolerance=2e-6)


def test_gelu_of_non_finite_and_extreme_values() -> None:
    """Gelu(NaN) is NaN, Gelu(inf) inf, Gelu(-inf) NaN (0.5 x (1 + erf) gives -inf * 0), and far
    tails are x and -0."""
    from lsc_ort.reference import gelu

    values = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 3.0, -3.0, 7.5, -7.5, 10.0, -10.0,
                       10.5, -10.5, 40.0, -40.0, 3e38, -3e38], np.float32)
    w = np.eye(len(values), dtype=np.float32)
    sess = session(matmul_model(lsc_ort.encode(w, "lsc"), activation="Gelu"))
    y = run(sess, np.diag(values).astype(np.float32))
    expected = gelu(values)
    got = np.diag(y)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=2e-6, atol=1e-30)


def test_unknown_activation_is_rejected() -> None:
    w = sparse_array((8, 4), 0.5)
    with pytest.raises(Exception, match=r"LSCMatMul.*lsc_mm.*unsupported activation 'Tanh'"):
        session(matmul_model(lsc_ort.encode(w, "lsc"), activation="Tanh"))


@pytest.mark.parametrize("activation", ["", "Gelu"])
def test_residual_before_the_activation(activation: str) -> None:
    """Y = activation(A W + bias + Z) on every path, float32 and float16."""
    rng = np.random.default_rng(22)
    w = sparse_array((64, 40), 0.8, seed=5)
    bias = rng.standard_normal(40).astype(np.float32)
    for dtype, tolerance in ((np.float32, 2e-6), (np.float16, 2e-3)):
        sess = session(matmul_model(lsc_ort.encode(w, "lsc"), bias, dtype, residual=True, activation=activation), 2)
        for m in (1, 2, 7, 130):
            a = rng.standard_normal((2, m, 64)).astype(dtype)
            z = rng.standard_normal((2, m, 40)).astype(dtype)
            y = reference(a.astype(np.float32), w, bias) + z
            expected = _activated(y, activation) if activation else y
            assert_close(sess.run(None, {"A": a, "Z": z})[0], expected, tolerance)


@pytest.mark.parametrize(("a_shape", "z_shape"), [((2, 7, 64), (1, 7, 40)), ((1, 7, 64), (3, 7, 40)),
                                              ((3, 1, 64), (3, 5, 40)), ((7, 64), (2, 3, 7, 40)), ((64,), (4, 40)),
                                              ((2, 70, 64), (2, 1, 40))])
@pytest.mark.parametrize("codec", ["lsc", "mswu"])
def test_residual_broadcasts_with_the_product(a_shape: tuple[int, ...], z_shape: tuple[int, ...], codec: str) -> None:
    """A Z of another shape broadcasts with P = A W + bias as ONNX Add does, either way, on the
    sliced, windowed and tiled paths (and after mswu's unified blocks); Y has the broadcast shape."""
    rng = np.random.default_rng(23)
    w = sparse_array((64, 40), 0.8, seed=6)
    bias = rng.standard_normal(40).astype(np.float32)
    sess = session(matmul_model(lsc_ort.encode(w, codec), bias, residual=True, activation="Relu"), 2)
    a = rng.standard_normal(a_shape).astype(np.float32)
    z = rng.standard_normal(z_shape).astype(np.float32)
    assert_close(sess.run(None, {"A": a, "Z": z})[0], np.maximum(reference(a, w, bias) + z, 0.0), 2e-6)


@pytest.mark.parametrize(("z_shape", "problem"), [
    ((3, 2, 4), r"Z has shape \[3, 2, 4\], which does not broadcast with the product's shape \[3, 4\]"),
    ((3, 1), r"Z has shape \[3, 1\]; the residual's last dimension must be N = 4"),
    ((), r"Z has shape \[\]; the residual's last dimension must be N = 4"),
])
def test_residual_that_does_not_broadcast_is_rejected(z_shape: tuple[int, ...], problem: str) -> None:
    w = sparse_array((8, 4), 0.5)
    sess = session(matmul_model(lsc_ort.encode(w, "lsc"), residual=True))
    with pytest.raises(Exception, match=rf"LSCMatMul.*lsc_mm.*{problem}"):
        sess.run(None, {"A": np.ones((3, 8), np.float32), "Z": np.ones(z_shape, np.float32)})


def _normed_model(w: np.ndarray, scale: np.ndarray | None, norm_bias: np.ndarray | None, dtype: type = np.float32,
                  residual: bool = False, **attributes: object) -> bytes:
    """matmul_model of ``w`` with a bias of 0.25 and LayerNorm's scale and bias as inputs 4 and 5."""
    import onnx

    bias = np.full(w.shape[1], 0.25)
    model = onnx.load_from_string(matmul_model(lsc_ort.encode(w, "lsc"), bias, dtype, residual=residual, **attributes))
    node = model.graph.node[0]
    while len(node.input) < 4:
        node.input.append("")
    for name, value in (("norm_scale", scale), ("norm_bias", norm_bias)):
        node.input.append(name if value is not None else "")
        if value is not None:
            model.graph.initializer.append(numpy_helper.from_array(value.astype(dtype), name))
    return model.SerializeToString()


def _layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None, epsilon: float) -> np.ndarray:
    x = x.astype(np.float64)
    mean = x.mean(-1, keepdims=True)
    y = (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + epsilon) * scale
    return y + bias if bias is not None else y


@pytest.mark.parametrize("activation", ["", "Gelu"])
def test_layer_norm_on_every_path_and_variant(activation: str, isa: str) -> None:
    """norm="LayerNorm" normalizes each row of activation(A W + bias + Z) last, on the sliced,
    windowed and tiled paths, with and without its bias and a residual, N not a multiple of 16."""
    rng = np.random.default_rng(24)
    w = sparse_array((96, 70), 0.8, seed=7)
    scale, norm_bias = rng.standard_normal(70).astype(np.float32), rng.standard_normal(70).astype(np.float32)
    for with_bias, residual, epsilon in ((True, True, 1e-5), (False, False, 1e-3)):
        model = _normed_model(w, scale, norm_bias if with_bias else None, residual=residual,
                              norm="LayerNorm", epsilon=epsilon, activation=activation)
        sess = session(model, 2)
        for m in (1, 2, 5, 64, 130):
            a = rng.standard_normal((m, 96)).astype(np.float32)
            feeds = {"A": a}
            y = reference(a, w, np.full(70, 0.25))
            if residual:
                feeds["Z"] = rng.standard_normal((m, 70)).astype(np.float32)
                y = y + feeds["Z"]
            y = _activated(y, activation) if activation else y
            expected = _layer_norm(y, scale, norm_bias if with_bias else None, epsilon)
            assert_close(sess.run(None, feeds)[0], expected, tolerance=2e-5)


def test_layer_norm_in_float16_with_a_broadcast_residual() -> None:
    rng = np.random.default_rng(25)
    w = sparse_array((64, 48), 0.8, seed=8)
    scale, norm_bias = rng.standard_normal(48), rng.standard_normal(48)
    sess = session(_normed_model(w, scale, norm_bias, np.float16, residual=True,
                                 norm="LayerNorm"))
    a = rng.standard_normal((1, 130, 64)).astype(np.float16)
    z = rng.standard_normal((2, 130, 48)).astype(np.float16)
    y = reference(a.astype(np.float32), w, np.full(48, 0.25)) + z
    expected = _layer_norm(y, scale.astype(np.float16), norm_bias.astype(np.float16), 1e-5)
    assert_close(sess.run(None, {"A": a, "Z": z})[0], expected, tolerance=2e-2)


@pytest.mark.parametrize(("scale", "norm_bias", "attributes", "problem"), [
    (4, None, {"norm": "RMSNorm"}, r"unsupported norm 'RMSNorm'"),
    (4, None, {"norm": "LayerNorm", "epsilon": float("nan")}, r"attribute epsilon must be finite and >= 0, got nan"),
    (4, None, {"norm": "LayerNorm", "epsilon": -1.0}, r"attribute epsilon must be finite and >= 0, got -1"),
    (4, None, {"norm": "LayerNorm", "output_layout": "TILES"},
     r"norm=\"LayerNorm\" cannot be combined with output_layout TILES"),
    (5, None, {"norm": "LayerNorm"}, r"norm_scale has shape \[5\], expected \[4\]"),
    (4, 3, {"norm": "LayerNorm"}, r"norm_bias has shape \[3\], expected \[4\]"),
    (None, 4, {"norm": "LayerNorm"}, r"norm=\"LayerNorm\" needs its norm_scale \(input 4\)"),
    (4, None, {}, r"norm_scale and norm_bias \(inputs 4 and 5\) need norm=\"LayerNorm\""),
    (None, 4, {}, r"norm_scale and norm_bias \(inputs 4 and 5\) need norm=\"LayerNorm\""),
])
def test_bad_norm_is_rejected(scale: int | None, norm_bias: int | None, attributes: dict[str, object],
                              problem: str) -> None:
    w = sparse_array((8, 4), 0.5)
    model = _normed_model(w, None if scale is None else np.ones(scale),
                          None if norm_bias is None else np.ones(norm_bias), **attributes)
    with pytest.raises(Exception, match=rf"LSCMatMul.*lsc_mm.*{problem}"):
        session(model).run(None, {"A": np.ones((3, 8), np.float32)})


def _to_heads(p: np.ndarray, heads: int, layout: str) -> np.ndarray:
    """Transpose(Reshape(p [B, S, N], [B, S, H, N / H])) in ``layout`` (lsc_ort/ops.py)."""
    b, s, n = p.shape
    split = p.reshape(b, s, heads, n // heads)
    return split.transpose(0, 2, 1, 3) if layout == "BHSD" else split.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("codec", ["lsc", "mswu"])
@pytest.mark.parametrize("layout", ["BHSD", "BHDS"])
def test_output_head_layouts_on_every_path(layout: str, codec: str, isa: str) -> None:
    """Y in [B, H, S, D] / [B, H, D, S] on the sliced, windowed and batched paths (batch tiles
    crossing batch boundaries), 1 and 2 threads, with the activation and mswu's unified blocks."""
    rng = np.random.default_rng(30)
    w = sparse_array((48, 96), 0.85, seed=4)
    bias = rng.standard_normal(96).astype(np.float32)
    for threads in (1, 2):
        sess = session(matmul_model(lsc_ort.encode(w, codec), bias, heads=4, output_layout=layout,
                                    activation="Gelu"), threads)
        for b, s in ((1, 1), (2, 1), (1, 5), (2, 5), (3, 70), (1, 130)):
            a = rng.standard_normal((b, s, 48)).astype(np.float32)
            expected = _to_heads(_activated(reference(a, w, bias), "Gelu"), 4, layout)
            assert_close(run(sess, a), expected, tolerance=2e-6)


@pytest.mark.parametrize("output_layout", ["", "BHSD", "BHDS"])
def test_input_head_layout(output_layout: str, isa: str) -> None:
    """A in [B, H, S, D], read back as tokens [B, S, K], alone and with an output layout, on
    every path; a weight of several spans (3072 columns) at 2 threads."""
    rng = np.random.default_rng(31)
    for k, n, heads in ((64, 40, 8), (96, 3072, 12)):
        w = sparse_array((k, n), 0.9, seed=k)
        bias = rng.standard_normal(n).astype(np.float32)
        layouts = {"output_layout": output_layout} if output_layout else {}
        sess = session(matmul_model(lsc_ort.encode(w, "lsc"), bias, heads=heads, input_layout="BHSD", **layouts), 2)
        for b, s in ((1, 1), (2, 3), (2, 9), (2, 100)):
            tokens = rng.standard_normal((b, s, k)).astype(np.float32)
            a = tokens.reshape(b, s, heads, k // heads).transpose(0, 2, 1, 3).copy()
            expected = reference(tokens, w, bias)
            if output_layout:
                expected = _to_heads(expected, heads, output_layout)
            assert_close(run(sess, a), expected)


def test_head_layouts_in_float16() -> None:
    rng = np.random.default_rng(32)
    w = sparse_array((32, 64), 0.8, seed=6)
    sess = session(matmul_model(lsc_ort.encode(w, "lsc"), None, np.float16, heads=2, input_layout="BHSD",
                                output_layout="BHDS"))
    for s in (2, 40):
        tokens = rng.standard_normal((2, s, 32)).astype(np.float16)
        a = tokens.reshape(2, s, 2, 16).transpose(0, 2, 1, 3).copy()
        y = sess.run(None, {"A": a})[0]
        assert y.dtype == np.float16
        assert_close(y, _to_heads(reference(tokens.astype(np.float32), w), 2, "BHDS"), 2e-3)


def _to_tiles(p: np.ndarray) -> np.ndarray:
    """``p`` [..., N] stored in row tiles of 64, each column-major (lsc_ort/ops.py, TILES)."""
    rows = p.reshape(-1, p.shape[-1])
    return np.concatenate([rows[t:t + 64].T.ravel() for t in range(0, len(rows), 64)]).reshape(p.shape)


@pytest.mark.parametrize("codec", ["lsc", "mswu"])
def test_row_tiles_on_every_path(codec: str, isa: str) -> None:
    """TILES in, out and both, on the sliced, windowed and batched paths: whole tiles (read and
    written in place), a short last tile, one tile of 48 rows (in place) and of 50 (not), ranks 2
    and 3, 1 and 2 threads, a weight of several spans, Gelu."""
    rng = np.random.default_rng(33)
    for k, n in ((40, 96), (64, 3072)):
        w = sparse_array((k, n), 0.85, seed=k)
        stored = lsc_ort.encode(w, codec)
        dense_w = lsc_ort.reference.weight_values(stored).astype(np.float64)
        bias = rng.standard_normal(n).astype(np.float32)
        for threads in (1, 2):
            sessions = {layouts: session(matmul_model(stored, bias, activation="Gelu", **dict(layouts)), threads)
                        for layouts in ((("output_layout", "TILES"),), (("input_layout", "TILES"),),
                                        (("input_layout", "TILES"), ("output_layout", "TILES")))}
            for shape in ((1, k), (2, k), (7, k), (48, k), (50, k), (128, k), (2, 100, k), (200, k)):
                a = rng.standard_normal(shape).astype(np.float32)
                expected = _activated(a.astype(np.float64) @ dense_w + bias, "Gelu")
                for layouts, sess in sessions.items():
                    names = dict(layouts)
                    given = _to_tiles(a) if "input_layout" in names else a
                    want = _to_tiles(expected) if "output_layout" in names else expected
                    assert_close(run(sess, given), want, tolerance=2e-6)


def test_row_tiles_with_head_layouts() -> None:
    rng = np.random.default_rng(34)
    w = sparse_array((32, 48), 0.8, seed=8)
    tokens = rng.standard_normal((2, 70, 32)).astype(np.float32)
    heads = tokens.reshape(2, 70, 4, 8).transpose(0, 2, 1, 3).copy()
    plain = reference(tokens, w)
    from_heads = session(matmul_model(lsc_ort.encode(w, "lsc"), heads=4, input_layout="BHSD", output_layout="TILES"))
    assert_close(run(from_heads, heads), _to_tiles(plain))
    to_heads = session(matmul_model(lsc_ort.encode(w, "lsc"), heads=4, input_layout="TILES", output_layout="BHDS"))
    assert_close(run(to_heads, _to_tiles(tokens)), _to_heads(plain, 4, "BHDS"))
