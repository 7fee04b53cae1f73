"""The numpy reference ops against numpy and onnx.reference's standard ops."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import lsc_ort
from lsc_ort.reference import NEW_OPS, LSCConv, LSCMatMul, decode_weight, reference_evaluator
from tests.rewrite_fixtures import NATIVE, assert_close, run_ort, sparse

OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid(lsc_ort.DOMAIN, 1)]


def one_node(
    op: str,
    inputs: dict[str, np.ndarray],
    blob: bytes,
    extra: dict[str, np.ndarray] | None = None,
    **attributes: object,
) -> onnx.ModelProto:
    extra = extra or {}
    names = [next(iter(inputs)), "W", *extra]
    node = helper.make_node(op, names, ["Y"], domain=lsc_ort.DOMAIN, **attributes)
    inits = [numpy_helper.from_array(np.frombuffer(blob, np.uint8), "W")]
    inits += [numpy_helper.from_array(v, k) for k, v in extra.items()]
    elem = helper.np_dtype_to_tensor_dtype(next(iter(inputs.values())).dtype)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(k, elem, v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info("Y", elem, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=OPSETS)


def check(
    model: onnx.ModelProto, feeds: dict[str, np.ndarray], expected: np.ndarray, tolerance: float = 1e-5
) -> None:
    (got,) = reference_evaluator(model).run(None, feeds)
    assert got.dtype == next(iter(feeds.values())).dtype
    assert_close(got, expected, tolerance)
    if NATIVE:
        (native,) = run_ort(model, feeds)
        assert_close(native, expected, max(tolerance, 1e-4))


@pytest.mark.parametrize("a_shape", [(5,), (3, 5), (2, 3, 5), (2, 1, 4, 5)])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("alpha", [1.0, -0.75])
@pytest.mark.parametrize("with_bias", [False, True])
def test_lsc_matmul(a_shape: tuple[int, ...], trans_b: int, alpha: float, with_bias: bool) -> None:
    w = sparse((7, 5) if trans_b else (5, 7), 0.6, seed=1)
    a = np.random.default_rng(2).standard_normal(a_shape).astype(np.float32)
    bias = np.linspace(-1, 1, 7, dtype=np.float32)
    extra = {"bias": bias} if with_bias else {}
    attrs = {"transB": trans_b} if trans_b else {}
    if alpha != 1.0:
        attrs["alpha"] = alpha
    model = one_node("LSCMatMul", {"A": a}, lsc_ort.encode(w, "csr"), extra, **attrs)
    expected = alpha * (a.astype(np.float64) @ (w.T if trans_b else w).astype(np.float64))
    if with_bias:
        expected = expected + bias
    check(model, {"A": a}, expected)


def test_lsc_matmul_float16() -> None:
    w = sparse((8, 6), 0.5, dtype=np.float16)
    a = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float16)
    model = one_node("LSCMatMul", {"A": a}, lsc_ort.encode(w, "bitmap"))
    check(model, {"A": a}, a.astype(np.float64) @ w.astype(np.float64), tolerance=1e-2)


def test_int8_blob_uses_its_scale() -> None:
    q = np.array([[1, 0, -3], [0, 2, 0]], np.int8)
    blob = lsc_ort.encode(q, "csr", scale=0.5)
    np.testing.assert_array_equal(decode_weight(np.frombuffer(blob, np.uint8)), 0.5 * q.astype(np.float32))


@pytest.mark.parametrize(
    "message,kwargs",
    [
        ("bias has shape", {"extra": {"bias": np.zeros(3, np.float32)}}),
        ("A has shape", {"a_shape": (2, 4)}),
        ("transB must be 0 or 1", {"transB": 2}),
    ],
)
def test_lsc_matmul_errors(message: str, kwargs: dict) -> None:
    a = np.ones(kwargs.pop("a_shape", (2, 5)), np.float32)
    model = one_node(
        "LSCMatMul", {"A": a}, lsc_ort.encode(sparse((5, 7), 0.5), "csr"), kwargs.pop("extra", None), **kwargs
    )
    with pytest.raises(Exception, match=message):
        reference_evaluator(model).run(None, {"A": a})


CONVS = {
    "2d": ((1, 4, 9, 9), (6, 4, 3, 3), {"pads": [1, 1, 1, 1]}),
    "2d-stride-dilation": ((2, 4, 11, 10), (6, 4, 3, 2), {"strides": [2, 1], "dilations": [1, 2]}),
    "groups": ((1, 6, 7, 7), (9, 2, 3, 3), {"group": 3}),
    "same-lower": ((1, 3, 8, 8), (4, 3, 3, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    "1d": ((2, 3, 16), (5, 3, 4), {"pads": [2, 1], "kernel_shape": [4]}),
}


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("with_bias", [False, True])
def test_lsc_conv_matches_conv(case: str, with_bias: bool) -> None:
    x_shape, w_shape, attrs = CONVS[case]
    x = np.random.default_rng(3).standard_normal(x_shape).astype(np.float32)
    w = sparse(w_shape, 0.7, seed=4)
    extra = {"B": np.arange(w_shape[0], dtype=np.float32)} if with_bias else {}
    model = one_node("LSCConv", {"X": x}, lsc_ort.encode(w, "relidx"), extra, **attrs)
    dense = helper.make_model(
        helper.make_graph(
            [helper.make_node("Conv", ["X", "W", *extra], ["Y"], **attrs)],
            "g",
            [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)],
            [numpy_helper.from_array(w, "W"), *(numpy_helper.from_array(v, k) for k, v in extra.items())],
        ),
        opset_imports=OPSETS[:1],
    )
    (expected,) = ReferenceEvaluator(dense).run(None, {"X": x})
    check(model, {"X": x}, expected)


def test_lsc_conv_rejects_a_matrix_blob() -> None:
    x = np.ones((1, 2, 4, 4), np.float32)
    model = one_node("LSCConv", {"X": x}, lsc_ort.encode(sparse((4, 2), 0.5), "csr"))
    with pytest.raises(Exception, match="rank 3 or 4"):
        reference_evaluator(model).run(None, {"X": x})


def test_new_ops_are_the_custom_ops() -> None:
    assert {(op.__name__, op.op_domain) for op in NEW_OPS} == {
        ("LSCMatMul", lsc_ort.DOMAIN),
        ("LSCConv", lsc_ort.DOMAIN),
    }
    assert LSCMatMul in NEW_OPS and LSCConv in NEW_OPS


def test_reference_evaluator_takes_a_path(tmp_path) -> None:
    a = np.ones((2, 5), np.float32)
    w = sparse((5, 3), 0.5)
    onnx.save_model(one_node("LSCMatMul", {"A": a}, lsc_ort.encode(w, "csr")), tmp_path / "m.onnx")
    (got,) = reference_evaluator(tmp_path / "m.onnx").run(None, {"A": a})
    assert_close(got, a @ w)
