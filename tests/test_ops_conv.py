"""LSCConv against a float64 numpy convolution and onnxruntime's dense Conv."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import helper, numpy_helper

import lsc_ort
from lsc_ort import native
from tests.conftest import sparse_array
from tests.op_models import (
    FLOAT,
    assert_close,
    blob_initializer,
    conv_model,
    dense_session,
    graph_model,
    reference_conv,
    session,
)

pytestmark = pytest.mark.skipif(not native.library_available(), reason="native library not built")

# (input shape, weight shape, attributes)
CASES: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ((2, 8, 13, 11), (16, 8, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 8, 13, 11), (16, 8, 3, 3), {"strides": [2, 2]}),
    ((1, 8, 13, 11), (16, 8, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ((1, 8, 13, 11), (16, 8, 3, 3), {"pads": [0, 1, 2, 3]}),
    ((1, 8, 13, 11), (16, 8, 3, 3), {"auto_pad": "SAME_UPPER"}),
    ((1, 8, 12, 12), (16, 8, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 8, 12, 12), (16, 8, 4, 4), {"auto_pad": "SAME_LOWER", "strides": [3, 3]}),
    ((1, 8, 10, 10), (12, 8, 3, 3), {"auto_pad": "VALID"}),
    ((2, 8, 9, 9), (8, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}),
    ((1, 8, 9, 9), (16, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}),
    ((1, 8, 9, 9), (6, 4, 3, 3), {"group": 2, "strides": [2, 2]}),
    ((2, 16, 9, 9), (32, 16, 1, 1), {}),
    ((1, 16, 9, 9), (32, 16, 1, 1), {"strides": [2, 2]}),
    ((1, 3, 32, 32), (16, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    ((1, 64, 14, 14), (64, 64, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((2, 4, 30), (5, 4, 3), {"pads": [1, 2], "strides": [2]}),
    ((1, 6, 40), (8, 3, 5), {"group": 2, "dilations": [2], "auto_pad": "SAME_UPPER"}),
    ((1, 4, 1, 1), (5, 4, 1, 1), {}),
    ((1, 2, 5, 5), (3, 2, 3, 3), {"kernel_shape": [3, 3]}),
    # Output rows of 16 or more pixels take the direct path (padded stride-phase planes).
    ((2, 6, 20, 37), (10, 6, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 6, 20, 37), (10, 6, 3, 3), {}),
    ((1, 6, 21, 75), (10, 6, 3, 3), {"strides": [2, 2], "pads": [0, 1, 2, 3]}),
    ((1, 6, 20, 40), (10, 6, 3, 3), {"dilations": [2, 3], "pads": [2, 3, 1, 0]}),
    ((1, 6, 20, 41), (10, 6, 4, 4), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 6, 20, 41), (10, 6, 4, 4), {"auto_pad": "SAME_LOWER"}),
    ((1, 6, 20, 33), (10, 6, 5, 2), {"auto_pad": "VALID", "strides": [1, 2]}),
    ((1, 8, 18, 34), (8, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}),
    ((1, 8, 18, 70), (16, 4, 3, 3), {"group": 2, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 16, 9, 40), (24, 16, 1, 1), {"strides": [2, 2]}),
    ((1, 3, 40, 40), (16, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    ((1, 4, 100), (6, 4, 5), {"strides": [3], "pads": [2, 2], "dilations": [2]}),
    ((1, 6, 20, 131), (10, 6, 3, 3), {"pads": [1, 1, 1, 1]}),
    # Stride-2 rows wider than 256 floats (the virtual path copies them with kernels.gather).
    ((1, 3, 6, 701), (4, 3, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    # Gathered tiles: two tiles of pixels, several K-blocks and two spans of output channels.
    ((1, 40, 11, 12), (520, 40, 3, 3), {"pads": [1, 1, 1, 1]}),
]


@pytest.fixture(params=["by-geometry", "gathered", "virtual"])
def conv_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both of LSCConv's products, gathered tiles and virtual positions (forced through
    LSC_ORT_CONV_PATH), and the choice between them by geometry."""
    if request.param != "by-geometry":
        monkeypatch.setenv("LSC_ORT_CONV_PATH", request.param)
    return str(request.param)


def ids(case: tuple[Any, ...]) -> str:
    return f"{case[0]}-{case[1]}-{case[2]}".replace(" ", "")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=[ids(c) for c in CASES])
def test_conv_matches_reference(case: tuple[Any, ...], threads: int, conv_path: str) -> None:
    x_shape, w_shape, attributes = case
    rng = np.random.default_rng(len(ids(case)))
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = sparse_array(w_shape, 0.7, seed=w_shape[0])
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    y = session(conv_model(lsc_ort.encode(w, "lsc"), b, **attributes), threads).run(None, {"X": x})[0]
    assert_close(y, reference_conv(x, w, b, **attributes))


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("codec", lsc_ort.available_codecs())
def test_conv_every_codec_and_sparsity(codec: str, sparsity: float) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 11, 9)).astype(np.float32)
    w = sparse_array((10, 6, 3, 3), sparsity, seed=4)
    y = session(conv_model(lsc_ort.encode(w, codec), pads=[1, 0, 1, 2])).run(None, {"X": x})[0]
    assert_close(y, reference_conv(x, w, None, pads=[1, 0, 1, 2]))


def test_conv_matches_onnxruntime_conv() -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 32, 28, 28)).astype(np.float32)
    w = sparse_array((64, 32, 3, 3), 0.9)
    b = rng.standard_normal(64).astype(np.float32)
    attributes = {"strides": [2, 2], "pads": [1, 1, 1, 1]}
    dense = dense_session(helper.make_node("Conv", ["X", "W", "B"], ["Y"], **attributes),
                          [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")], "X")
    y = session(conv_model(lsc_ort.encode(w, "lsc"), b, **attributes), 2).run(None, {"X": x})[0]
    assert_close(y, dense.run(None, {"X": x})[0].astype(np.float64))


@pytest.mark.parametrize("threads", [1, 2])
def test_one_session_runs_every_batch_size(conv_path: str, threads: int) -> None:
    """A node keeps a plan per input height and width: batches of other sizes reuse it."""
    rng = np.random.default_rng(17)
    for x_shape, w_shape, attributes in (CASES[1], CASES[13], CASES[15], CASES[-1]):
        w = sparse_array(w_shape, 0.7, seed=w_shape[0])
        sess = session(conv_model(lsc_ort.encode(w, "lsc"), **attributes), threads)
        for batch in (1, 3, 1, 2):
            x = rng.standard_normal((batch, *x_shape[1:])).astype(np.float32)
            assert_close(sess.run(None, {"X": x})[0], reference_conv(x, w, None, **attributes))


def test_conv_float16(conv_path: str) -> None:
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float16)
    w = sparse_array((6, 4, 3, 3), 0.6)
    y = session(conv_model(lsc_ort.encode(w, "lsc"), dtype=np.float16)).run(None, {"X": x})[0]
    assert y.dtype == np.float16
    assert_close(y, reference_conv(x.astype(np.float32), w, None), tolerance=2e-3)


@pytest.mark.parametrize("isa", ["avx512", "avx2", "scalar"])
def test_conv_every_kernel_variant(isa: str, monkeypatch: pytest.MonkeyPatch, conv_path: str) -> None:
    monkeypatch.setenv("LSC_ORT_ISA", isa)
    assert native.kernel_name().endswith(isa)
    rng = np.random.default_rng(13)
    for x_shape, w_shape, attributes in CASES[:3] + CASES[8:10] + CASES[15:16] + CASES[19:]:
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = sparse_array(w_shape, 0.8)
        y = session(conv_model(lsc_ort.encode(w, "lsc"), **attributes), 2).run(None, {"X": x})[0]
        assert_close(y, reference_conv(x, w, None, **attributes))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CASES[::3] + CASES[19:22] + CASES[-1:],
                         ids=[ids(c) for c in CASES[::3] + CASES[19:22] + CASES[-1:]])
def test_conv_residual_and_relu(case: tuple[Any, ...], threads: int, conv_path: str) -> None:
    """Y = relu(conv(X) + B + Z), on direct and staged output tiles."""
    x_shape, w_shape, attributes = case
    rng = np.random.default_rng(len(ids(case)) + 1)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = sparse_array(w_shape, 0.8, seed=w_shape[1])
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    expected = reference_conv(x, w, b, **attributes)
    z = rng.standard_normal(expected.shape).astype(np.float32)
    model = conv_model(lsc_ort.encode(w, "lsc"), b, residual=True, activation="Relu", **attributes)
    y = session(model, threads).run(None, {"X": x, "Z": z})[0]
    assert_close(y, np.maximum(expected + z, 0.0))
    y = session(conv_model(lsc_ort.encode(w, "lsc"), b, activation="Relu", **attributes), threads).run(
        None, {"X": x})[0]
    assert_close(y, np.maximum(expected, 0.0))


def residual_chain_model(blob: bytes, x_shape: tuple[int, ...], y_shape: tuple[int, ...], dtype: Any = np.float32,
                         keep_z: bool = False, **attributes: Any) -> bytes:
    """``out = -LSCConv(X, W, B, Z = Zin + Zin)`` with static shapes: ``Z`` is an intermediate that
    only the LSCConv reads, so onnxruntime may give ``Y`` its buffer; ``keep_z`` also makes ``Z`` a
    graph output, which rules that out."""
    elem = FLOAT[np.dtype(dtype)]
    b = np.linspace(-1.0, 1.0, y_shape[1]).astype(dtype)
    nodes = [helper.make_node("Add", ["Zin", "Zin"], ["Z"]),
             helper.make_node("LSCConv", ["X", "W", "B", "Z"], ["Y"], domain=lsc_ort.DOMAIN, name="lsc_conv",
                              activation="Relu", **attributes),
             helper.make_node("Neg", ["Y"], ["out"])]
    outputs = [helper.make_tensor_value_info("out", elem, list(y_shape))]
    if keep_z:
        outputs.append(helper.make_tensor_value_info("Z", elem, list(y_shape)))
    inputs = [helper.make_tensor_value_info("X", elem, list(x_shape)),
              helper.make_tensor_value_info("Zin", elem, list(y_shape))]
    return graph_model(nodes, inputs, outputs, [blob_initializer(blob), numpy_helper.from_array(b, "B")],
                       [helper.make_tensor_value_info(name, elem, list(y_shape)) for name in ("Z", "Y")])


IN_PLACE_CASES = CASES[::4] + CASES[11:13] + CASES[19:22] + CASES[-1:] + [
    # 1 x 1 with many inputs (several K-blocks, the sums waiting in Y), strided and not.
    ((1, 600, 6, 7), (24, 600, 1, 1), {}),
    ((1, 600, 13, 14), (24, 600, 1, 1), {"strides": [2, 2]}),
    ((2, 300, 20, 20), (40, 300, 1, 1), {}),
]


@pytest.mark.parametrize("codec", ["lsc", "mswu"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", IN_PLACE_CASES, ids=[ids(c) for c in IN_PLACE_CASES])
def test_conv_output_in_the_residual_buffer(case: tuple[Any, ...], threads: int, codec: str, conv_path: str) -> None:
    """When onnxruntime writes Y over Z (MayInplace), the product starts from Z: the same outputs
    as with Z kept, on every product path, for K-blocks and spans, on one and two threads."""
    x_shape, w_shape, attributes = case
    rng = np.random.default_rng(len(ids(case)) + 7)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = sparse_array(w_shape, 0.8, seed=w_shape[1])
    b = np.linspace(-1.0, 1.0, w_shape[0]).astype(np.float32)
    expected = reference_conv(x, w, b, **attributes)
    zin = rng.standard_normal(expected.shape).astype(np.float32)
    expected = -np.maximum(expected + 2.0 * zin.astype(np.float64), 0.0)
    blob = lsc_ort.encode(w, codec)
    before = native.conv_runs_with_residual_in_place()
    for keep_z in (False, True):
        model = residual_chain_model(blob, x_shape, expected.shape, keep_z=keep_z, **attributes)
        outputs = session(model, threads).run(None, {"X": x, "Zin": zin})
        assert_close(outputs[0], expected)
        if keep_z:
            np.testing.assert_array_equal(outputs[1], 2.0 * zin)
        assert native.conv_runs_with_residual_in_place() - before == 1  # only the first shares Z's buffer


def test_conv_never_writes_over_a_constant_or_input_residual() -> None:
    """A residual that is an initializer or a graph input keeps its buffer: runs repeat exactly."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal((1, 16, 9, 9)).astype(np.float32)
    w = sparse_array((32, 16, 1, 1), 0.7)
    z = rng.standard_normal((1, 32, 9, 9)).astype(np.float32)
    expected = reference_conv(x, w, None) + z
    shape = list(z.shape)
    nodes = [helper.make_node("LSCConv", ["X", "W", "", "Z"], ["Y"], domain=lsc_ort.DOMAIN, name="lsc_conv"),
             helper.make_node("Neg", ["Y"], ["out"])]
    elem = FLOAT[np.dtype(np.float32)]
    blob = lsc_ort.encode(w, "lsc")
    for constant in (True, False):
        inputs = [helper.make_tensor_value_info("X", elem, list(x.shape))]
        initializers = [blob_initializer(blob)]
        if constant:
            initializers.append(numpy_helper.from_array(z, "Z"))
        else:
            inputs.append(helper.make_tensor_value_info("Z", elem, shape))
        outputs = [helper.make_tensor_value_info("out", elem, shape)]
        value_info = [helper.make_tensor_value_info("Y", elem, shape)]
        sess = session(graph_model(nodes, inputs, outputs, initializers, value_info))
        feeds = {"X": x} if constant else {"X": x, "Z": z}
        before = native.conv_runs_with_residual_in_place()
        for _ in range(3):
            assert_close(-sess.run(None, feeds)[0], expected)
        assert native.conv_runs_with_residual_in_place() == before
        np.testing.assert_array_equal(feeds.get("Z", z), z)


def test_conv_in_place_on_declared_shapes_that_lie() -> None:
    """A model whose value_info claims Y has Z's shape (so onnxruntime hands Y Z's buffer) while
    the convolution makes Y smaller: a clear error naming the node, not a wrong answer."""
    w = sparse_array((32, 16, 1, 1), 0.7)
    model = residual_chain_model(lsc_ort.encode(w, "lsc"), (1, 16, 9, 9), (1, 32, 9, 9), strides=[2, 2])
    with pytest.raises(Exception, match=r"LSCConv\] node 'lsc_conv'.*Z has shape \[1, 32, 9, 9\] but Y has shape"):
        session(model).run(None, {"X": np.ones((1, 16, 9, 9), np.float32), "Zin": np.ones((1, 32, 9, 9), np.float32)})


def test_conv_float16_output_in_the_residual_buffer(conv_path: str) -> None:
    rng = np.random.default_rng(15)
    x = rng.standard_normal((1, 8, 9, 9)).astype(np.float16)
    w = sparse_array((16, 8, 1, 1), 0.6)
    zin = rng.standard_normal((1, 16, 9, 9)).astype(np.float16)
    b = np.linspace(-1.0, 1.0, 16)
    expected = -np.maximum(reference_conv(x.astype(np.float32), w, b) + 2.0 * zin.astype(np.float64), 0.0)
    y = session(residual_chain_model(lsc_ort.encode(w, "lsc"), x.shape, zin.shape, np.float16)).run(
        None, {"X": x, "Zin": zin})[0]
    assert_close(y, expected, tolerance=2e-3)


def test_conv_residual_float16_and_shape_check(conv_path: str) -> None:
    rng = np.random.default_rng(14)
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float16)
    w = sparse_array((6, 4, 3, 3), 0.6)
    z = rng.standard_normal((1, 6, 6, 6)).astype(np.float16)
    sess = session(conv_model(lsc_ort.encode(w, "lsc"), dtype=np.float16, residual=True))
    y = sess.run(None, {"X": x, "Z": z})[0]
    assert_close(y, reference_conv(x.astype(np.float32), w, None) + z.astype(np.float64), tolerance=2e-3)
    with pytest.raises(Exception, match=r"LSCConv\] node 'lsc_conv'.*Z has shape \[1, 6, 1, 1\]"):
        sess.run(None, {"X": x, "Z": z[:, :, :1, :1].copy()})


def test_conv_rejects_unknown_activation() -> None:
    w = sparse_array((6, 4, 3, 3), 0.6)
    with pytest.raises(Exception, match=r"LSCConv\] node 'lsc_conv'.*unsupported activation 'Tanh'"):
        session(conv_model(lsc_ort.encode(w, "lsc"), activation="Tanh"))


@pytest.mark.parametrize("shape", [(1, 4, 9, 9), (1, 4, 30, 30)])
def test_non_finite_activation_reaches_only_stored_weights(shape: tuple[int, ...]) -> None:
    """A NaN in X reaches exactly the outputs whose stored (non-zero) weights read it."""
    w = sparse_array((8, shape[1], 3, 3), 0.9, seed=2)
    x = np.ones(shape, np.float32)
    x[0, 1, 4, 4] = np.nan
    attributes = {"pads": [1, 1, 1, 1]}
    y = session(conv_model(lsc_ort.encode(w, "lsc"), **attributes)).run(None, {"X": x})[0]
    reads = reference_conv(np.isnan(x).astype(np.float32), (w != 0).astype(np.float32), None, **attributes) > 0
    assert np.array_equal(np.isnan(y), reads) and reads.any() and not reads.all()
