"""LSCMatMul / LSCConv compiled with TVM (tvm_schedules) on llvm: shapes and attributes the
onnxruntime kernels support, against float64 numpy; structural zeros; bad input; the rules."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import lsc_ort
from tests.conftest import sparse_array
from tests.op_models import assert_close, conv_model, matmul_model, reference_conv
from tests.test_ops_conv import CASES as CONV_CASES
from tests.test_ops_conv import ids
from tests.tile_models import TILE_M, leading, tile_chain, unpaired_tile_models
from tests.tvm_helpers import compiled, tvm, tvm_schedules

from tvm_schedules import LscImportError  # isort: skip
from tvm_schedules.kernels import MatMulKernel, kernel_spec  # isort: skip
from tvm_schedules.schedules import RULES, apply_schedules, cpu, schedule_function  # isort: skip


def reference(a: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, alpha: float = 1.0) -> np.ndarray:
    y = alpha * (a.astype(np.float64) @ w.astype(np.float64))
    return y + bias.astype(np.float64) if bias is not None else y


def with_input_shape(model: bytes, name: str, shape: list[Any]) -> bytes:
    """``model`` with input ``name`` declared of ``shape`` (ints, or names for symbolic dims)."""
    proto = onnx.load_from_string(model)
    index = next((i for i, v in enumerate(proto.graph.input) if v.name == name), 0)
    elem = proto.graph.input[index].type.tensor_type.elem_type
    proto.graph.input[index].CopyFrom(helper.make_tensor_value_info(name, elem, shape))
    return proto.SerializeToString()


def run(model: bytes, feeds: dict[str, np.ndarray], **kwargs: Any) -> np.ndarray:
    return tvm_schedules.run(compiled(model, **kwargs), feeds)[0]


# --- LSCMatMul -----------------------------------------------------------------------------------

BATCHES = [1, 2, 16, 17, 64, 65, 130]
"""Rows of A: the one-row path, and each row tile tier with full and partial tiles."""


@pytest.mark.parametrize("codec", lsc_ort.available_codecs())
def test_matmul_every_codec(codec: str) -> None:
    rng = np.random.default_rng(1)
    w = sparse_array((37, 53), 0.8, seed=2)
    model = with_input_shape(matmul_model(lsc_ort.encode(w, codec)), "A", ["M", 37])
    for m in BATCHES:
        a = rng.standard_normal((m, 37)).astype(np.float32)
        assert_close(run(model, {"A": a}), reference(a, w))


@pytest.mark.parametrize("k,n,sparsity", [(1, 1, 0.0), (1, 300, 0.5), (300, 1, 0.5), (7, 3, 0.0), (33, 17, 0.9),
                                          (1100, 24, 0.9), (24, 1100, 0.99), (64, 64, 1.0)])
def test_matmul_shapes(k: int, n: int, sparsity: float) -> None:
    rng = np.random.default_rng(k + n)
    w = sparse_array((k, n), sparsity, seed=k * n)
    model = with_input_shape(matmul_model(lsc_ort.encode(w, "lsc")), "A", ["M", k])
    for m in (1, 5, 70):
        a = rng.standard_normal((m, k)).astype(np.float32)
        assert_close(run(model, {"A": a}), reference(a, w))


@pytest.mark.parametrize("shape", [(19,), (1, 19), (6, 19), (2, 3, 19), (2, 3, 5, 19), (0, 19), (2, 0, 19)])
def test_matmul_rank_one_to_four_inputs(shape: tuple[int, ...]) -> None:
    w = sparse_array((19, 11), 0.8)
    a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = run(with_input_shape(matmul_model(lsc_ort.encode(w, "lsc")), "A", list(shape)), {"A": a})
    assert y.shape == (*shape[:-1], 11)
    assert_close(y, reference(a, w))


@pytest.mark.parametrize("transposed", [0, 1])
def test_matmul_alpha_bias_and_transposed_weight(transposed: int) -> None:
    rng = np.random.default_rng(5)
    w = sparse_array((48, 30), 0.85)
    bias = rng.standard_normal(30).astype(np.float32)
    stored = w.T.copy() if transposed else w
    model = with_input_shape(matmul_model(lsc_ort.encode(stored, "lsc"), bias, alpha=0.25, transB=transposed),
                             "A", ["B", "S", 48])
    for batch, seq in ((1, 1), (3, 3), (2, 50)):
        a = rng.standard_normal((batch, seq, 48)).astype(np.float32)
        assert_close(run(model, {"A": a}), reference(a, w, bias, 0.25))


@pytest.mark.parametrize("activation", ["Relu", "Gelu"])
def test_matmul_activation(activation: str) -> None:
    from lsc_ort.reference import gelu

    rng = np.random.default_rng(6)
    w = sparse_array((48, 30), 0.85) * 3
    bias = rng.standard_normal(30).astype(np.float32)
    model = with_input_shape(matmul_model(lsc_ort.encode(w, "lsc"), bias, residual=True, activation=activation),
                             "A", ["B", 48])
    model = with_input_shape(model, "Z", ["B", 30])
    a = rng.standard_normal((7, 48)).astype(np.float32)
    z = rng.standard_normal((7, 30)).astype(np.float32)
    y = reference(a, w, bias) + z
    assert_close(run(model, {"A": a, "Z": z}),
                 np.maximum(y, 0) if activation == "Relu" else gelu(y).astype(np.float64))


def with_norm(model: bytes, scale: np.ndarray | None, bias: np.ndarray | None = None, **attributes: Any) -> bytes:
    """``model`` (one LSCMatMul) with inputs 4 and 5 (``norm_scale``, ``norm_bias``) as
    initializers where given, and ``attributes`` (``norm``, ``epsilon``) added."""
    proto = onnx.load_from_string(model)
    node = proto.graph.node[0]
    node.input.extend([""] * (4 - len(node.input)))
    for name, value in (("norm_scale", scale), ("norm_bias", bias)):
        node.input.append(name if value is not None else "")
        if value is not None:
            proto.graph.initializer.append(numpy_helper.from_array(value, name))
    while not node.input[-1]:
        node.input.pop()
    node.attribute.extend(helper.make_attribute(k, v) for k, v in attributes.items())
    return proto.SerializeToString()


NORM_CASES = {  # A's shape, Z's shape (None: no residual), feeds' (A, Z) shapes, attributes
    "Z-1SN-gelu": (["B", "S", 48], [1, "S", 30], ((2, 5, 48), (1, 5, 30)), {"activation": "Gelu"}),
    "A-1SK-relu": ([1, "S", 48], ["B", "S", 30], ((1, 5, 48), (3, 5, 30)), {"activation": "Relu", "epsilon": 0.25}),
    "Z-N": (["M", 48], [30], ((7, 48), (30,)), {"epsilon": 0.0}),
    "no-Z": (["M", 48], None, ((1, 48), None), {}),
    "Z-of-higher-rank": (["S", 48], [2, "S", 30], ((4, 48), (2, 4, 30)), {}),
    "renamed-batch": (["B", "S", 48], ["B2", "S", 30], ((2, 3, 48), (2, 3, 30)), {"activation": "Relu"}),
}


@pytest.mark.parametrize("case", NORM_CASES)
@pytest.mark.parametrize("norm", ["LayerNorm", "LayerNorm-without-bias", ""])
def test_matmul_norm_and_broadcast_residual(case: str, norm: str) -> None:
    """norm="LayerNorm" last and a residual Z that broadcasts with the product (symbolic dims
    included, and two batch dims of different names: taken equal, checked at run time), against
    the reference."""
    a_shape, z_shape, (a_feed, z_feed), attributes = NORM_CASES[case]
    rng = np.random.default_rng(len(case))
    w = sparse_array((48, 30), 0.85) * 3
    bias = rng.standard_normal(30).astype(np.float32)
    model = with_input_shape(matmul_model(lsc_ort.encode(w, "lsc"), bias, residual=z_shape is not None,
                                          activation=attributes.get("activation", "")), "A", a_shape)
    if z_shape is not None:
        model = with_input_shape(model, "Z", z_shape)
    if norm:
        shift = np.linspace(1, -1, 30, dtype=np.float32) if norm == "LayerNorm" else None
        model = with_norm(model, np.linspace(0.5, 2, 30, dtype=np.float32), shift, norm="LayerNorm",
                          **{k: v for k, v in attributes.items() if k == "epsilon"})
    feeds = {"A": rng.standard_normal(a_feed).astype(np.float32)}
    if z_feed is not None:
        feeds["Z"] = rng.standard_normal(z_feed).astype(np.float32)
    y = run(model, feeds)
    expected = reference_run(model, feeds)
    assert y.shape == expected.shape == np.broadcast_shapes((*a_feed[:-1], 30), z_feed or (30,))
    assert_close(y, expected.astype(np.float64), tolerance=1e-4)
    if case == "renamed-batch":  # B2 is taken equal to B: a Z of batch 1 fails at run time
        with pytest.raises((RuntimeError, ValueError), match=r"[Mm]ismatch"):
            run(model, {**feeds, "Z": feeds["Z"][:1]})


def test_matmul_norm_float16() -> None:
    rng = np.random.default_rng(31)
    w = sparse_array((64, 32), 0.8)
    model = with_input_shape(matmul_model(lsc_ort.encode(w, "lsc"), dtype=np.float16, residual=True), "A",
                             ["B", "S", 64])
    model = with_norm(with_input_shape(model, "Z", [1, "S", 32]), np.linspace(0.5, 2, 32).astype(np.float16),
                      np.linspace(1, -1, 32).astype(np.float16), norm="LayerNorm", epsilon=1e-3)
    feeds = {"A": rng.standard_normal((2, 9, 64)).astype(np.float16),
             "Z": rng.standard_normal((1, 9, 32)).astype(np.float16)}
    y = run(model, feeds)
    assert y.dtype == np.float16 and y.shape == (2, 9, 32)
    assert_close(y, reference_run(model, feeds).astype(np.float64), tolerance=2e-3)


HEAD_LAYOUTS = [("BHSD", ""), ("", "BHSD"), ("", "BHDS"), ("BHSD", "BHSD"), ("BHSD", "BHDS")]


def head_model(layout_in: str, layout_out: str, heads: int = 3, k: int = 24, n: int = 18,
               input_shape: list[Any] | None = None, **kwargs: Any) -> bytes:
    """matmul_model with the head layouts, A of symbolic batch and sequence."""
    attrs = {"heads": heads, **({"input_layout": layout_in} if layout_in else {}),
             **({"output_layout": layout_out} if layout_out else {})}
    w = kwargs.pop("w", None)
    w = sparse_array((k, n), 0.7, seed=3) if w is None else w
    default_shape = ["B", heads, "S", k // heads] if layout_in else ["B", "S", k]
    return with_input_shape(matmul_model(lsc_ort.encode(w, "lsc"), **attrs, **kwargs), "A",
                            input_shape or default_shape)


def reference_run(model: bytes, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from lsc_ort.reference import reference_evaluator

    return reference_evaluator(onnx.load_from_string(model)).run(None, feeds)[0]


@pytest.mark.parametrize("layouts", HEAD_LAYOUTS, ids=["-".join(x or "plain" for x in p) for p in HEAD_LAYOUTS])
@pytest.mark.parametrize("variant", ["bias-alpha-gelu", "transB-relu"])
def test_matmul_head_layouts(layouts: tuple[str, str], variant: str) -> None:
    rng = np.random.default_rng(11)
    w = sparse_array((24, 18), 0.7, seed=3)
    if variant == "transB-relu":
        model = head_model(*layouts, w=w.T.copy(), transB=1, activation="Relu")
    else:
        bias = rng.standard_normal(18).astype(np.float32)
        model = head_model(*layouts, w=w, bias=bias, alpha=0.5, activation="Gelu")
    for batch in (1, 2):
        for seq in (1, 5, 17):
            a = rng.standard_normal((batch, 3, seq, 8) if layouts[0] else (batch, seq, 24)).astype(np.float32)
            y = run(model, {"A": a})
            expected = reference_run(model, {"A": a})
            assert y.shape == expected.shape
            assert_close(y, expected.astype(np.float64))


def test_matmul_head_layouts_float16_and_symbolic_heads() -> None:
    """float16 in and out; A of symbolic heads and head size, checked at run time."""
    rng = np.random.default_rng(12)
    bias = rng.standard_normal(18).astype(np.float32)
    model = head_model("BHSD", "BHDS", input_shape=["B", "H", "S", "D"], bias=bias, dtype=np.float16)
    a = rng.standard_normal((2, 3, 5, 8)).astype(np.float16)
    y = run(model, {"A": a})
    assert y.dtype == np.float16 and y.shape == (2, 3, 6, 5)
    assert_close(y, reference_run(model, {"A": a}).astype(np.float64), tolerance=2e-3)
    with pytest.raises(RuntimeError, match=r"match_cast error,\s+shape\[1\] mismatch"):
        run(model, {"A": rng.standard_normal((2, 4, 5, 6)).astype(np.float16)})


def test_matmul_head_layout_chain_shapes() -> None:
    """Q in BHSD out of one node, back to tokens by the next: the stand-in graph of onnx shape
    inference gives the first node's output its layout's shape."""
    from tvm_schedules.importer import check_lsc_nodes

    rng = np.random.default_rng(13)
    w1, w2 = sparse_array((24, 18), 0.7, seed=1), sparse_array((18, 12), 0.7, seed=2)
    nodes = [helper.make_node("LSCMatMul", ["x", "w1"], ["q"], domain=lsc_ort.DOMAIN, name="q_proj", heads=3,
                              output_layout="BHSD"),
             helper.make_node("LSCMatMul", ["q", "w2"], ["y"], domain=lsc_ort.DOMAIN, name="o_proj", heads=3,
                              input_layout="BHSD", output_layout="BHDS")]
    inits = [numpy_helper.from_array(np.frombuffer(lsc_ort.encode(w, "lsc"), np.uint8), name)
             for w, name in ((w1, "w1"), (w2, "w2"))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 7, 24])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(lsc_ort.DOMAIN, 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    assert [node.input_shape for node in check_lsc_nodes(model)] == [("B", 7, 24), ("B", 3, 7, 6)]
    x = rng.standard_normal((2, 7, 24)).astype(np.float32)
    y = run(model.SerializeToString(), {"x": x})
    assert y.shape == (2, 3, 4, 7)
    assert_close(y, reference_run(model.SerializeToString(), {"x": x}).astype(np.float64))


def test_matmul_tile_chain() -> None:
    """Three LSCMatMul nodes handing their results on in TILES compute the plain chain (the
    tensors between them, never observable, are plain in TVM): each row tile tier, ranks 2 and 3;
    onnx shape inference gives the tensors between them their plain shapes."""
    from tvm_schedules.importer import check_lsc_nodes

    rng = np.random.default_rng(14)
    for x_shape in (["M", 12], ["B", "S", 12]):
        chain = tile_chain(x_shape, (12, 15, 9, 6), seed=3)
        assert [node.input_shape for node in check_lsc_nodes(chain.model)] == [
            tuple(x_shape), (*x_shape[:-1], 15), (*x_shape[:-1], 9)]
        model = chain.model.SerializeToString()
        for m in TILE_M:
            x = rng.standard_normal((*leading(m, len(x_shape)), 12)).astype(np.float32)
            y = run(model, {"x": x})
            assert y.shape == (*x.shape[:-1], 6)
            assert_close(y, reference_run(model, {"x": x}).astype(np.float64))
            assert_close(y, chain.expected(x))


def test_matmul_tile_chain_with_head_layouts_outside() -> None:
    chain = tile_chain(["B", 3, "S", 4], (12, 15, 9), input_layout="BHSD", output_layout="BHDS", heads=3)
    model = chain.model.SerializeToString()
    x = np.random.default_rng(15).standard_normal((2, 3, 40, 4)).astype(np.float32)
    y = run(model, {"x": x})
    assert y.shape == (2, 3, 3, 40)
    assert_close(y, reference_run(model, {"x": x}).astype(np.float64))


@pytest.mark.parametrize("case", list(unpaired_tile_models()))
def test_unpaired_tiles_are_rejected(case: str) -> None:
    from tvm_schedules.importer import check_lsc_nodes

    model, node, message = unpaired_tile_models()[case]
    with pytest.raises(LscImportError, match=rf"\[LSCMatMul\] node '{node}': {message}"):
        check_lsc_nodes(model)
    if case == "standard-reader":  # the compile path checks first
        compile_fails(model.SerializeToString(), rf"node 'l0': {message}", {"x": [2, 5, 12]})


def test_tiles_output_with_residual_is_rejected() -> None:
    chain = tile_chain(["B", 12], (12, 15, 7))
    chain.model.graph.input.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", 15]))
    chain.model.graph.node[0].input.append("z")
    compile_fails(chain.model.SerializeToString(),
                  r"\[LSCMatMul\] node 'l0': a residual Z cannot be combined with output_layout TILES", {})


@pytest.mark.parametrize("dtype", [np.float16, np.int8])
def test_matmul_stored_value_types(dtype: type) -> None:
    rng = np.random.default_rng(8)
    stored = sparse_array((40, 24), 0.8, dtype)
    scale = 0.03125 if dtype == np.int8 else None
    real = stored.astype(np.float64) * (scale or 1.0)
    model = with_input_shape(matmul_model(lsc_ort.encode(stored, "lsc", scale=scale)), "A", ["M", 40])
    for m in (1, 20):
        a = rng.standard_normal((m, 40)).astype(np.float32)
        assert_close(run(model, {"A": a}), reference(a, real))


def test_matmul_float16_activations() -> None:
    rng = np.random.default_rng(9)
    w = sparse_array((64, 32), 0.8)
    bias = rng.standard_normal(32).astype(np.float32)
    model = with_input_shape(matmul_model(lsc_ort.encode(w, "lsc"), bias, dtype=np.float16), "A", ["M", 64])
    for m in (1, 40):
        a = rng.standard_normal((m, 64)).astype(np.float16)
        y = run(model, {"A": a})
        assert y.dtype == np.float16
        assert_close(y, reference(a.astype(np.float32), w, bias.astype(np.float16)), tolerance=2e-3)


def test_matmul_large_layer() -> None:
    rng = np.random.default_rng(7)
    w = sparse_array((768, 3072), 0.9)
    model = with_input_shape(matmul_model(lsc_ort.encode(w, "lsc")), "A", ["M", 768])
    for m in (1, 8, 128):
        a = rng.standard_normal((m, 768)).astype(np.float32)
        assert_close(run(model, {"A": a}), reference(a, w))


@pytest.mark.parametrize("m", [1, 40, 130])
def test_pruned_weights_are_structural_zeros(m: int) -> None:
    """A NaN or infinity in A reaches only the outputs of columns with a stored non-zero in its
    row, as in the native kernels."""
    w = sparse_array((20, 40), 0.5, seed=3)
    w[4, :] = 0.0
    w[4, 7] = 2.0  # row 4 feeds column 7 only
    w[9, :] = 0.0  # row 9 feeds nothing
    model = with_input_shape(matmul_model(lsc_ort.encode(w, "lsc")), "A", ["M", 20])
    a = np.random.default_rng(m).standard_normal((m, 20)).astype(np.float32)
    a[:, 4], a[:, 9] = np.nan, np.inf
    y = run(model, {"A": a})
    assert np.isnan(y[:, 7]).all()
    others = np.delete(y, 7, axis=1)
    assert np.isfinite(others).all()
    clean = a.copy()
    clean[:, 4] = clean[:, 9] = 0
    assert_close(others, np.delete(reference(clean, w), 7, axis=1))


# --- LSCConv -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CONV_CASES, ids=[ids(c) for c in CONV_CASES])
def test_conv_matches_reference(case: tuple[Any, ...]) -> None:
    x_shape, w_shape, attributes = case
    rng = np.random.default_rng(len(ids(case)))
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = sparse_array(w_shape, 0.7, seed=w_shape[0])
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    model = with_input_shape(conv_model(lsc_ort.encode(w, "lsc"), b, **attributes), "X", list(x_shape))
    assert_close(run(model, {"X": x}), reference_conv(x, w, b, **attributes))


def test_conv_symbolic_batch_and_size() -> None:
    rng = np.random.default_rng(4)
    w = sparse_array((10, 6, 3, 3), 0.8)
    attributes = {"strides": [2, 1], "pads": [1, 0, 1, 2], "dilations": [1, 2]}
    model = with_input_shape(conv_model(lsc_ort.encode(w, "lsc"), **attributes), "X", ["N", 6, "H", "W"])
    for shape in [(1, 6, 9, 9), (3, 6, 20, 41)]:
        x = rng.standard_normal(shape).astype(np.float32)
        assert_close(run(model, {"X": x}), reference_conv(x, w, None, **attributes))


@pytest.mark.parametrize("codec", lsc_ort.available_codecs())
def test_conv_every_codec(codec: str) -> None:
    x = np.random.default_rng(3).standard_normal((2, 6, 11, 9)).astype(np.float32)
    w = sparse_array((10, 6, 3, 3), 0.9, seed=4)
    model = with_input_shape(conv_model(lsc_ort.encode(w, codec), pads=[1, 0, 1, 2]), "X", list(x.shape))
    assert_close(run(model, {"X": x}), reference_conv(x, w, None, pads=[1, 0, 1, 2]))


@pytest.mark.parametrize("residual", [False, True])
def test_conv_fused_residual_and_relu(residual: bool) -> None:
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 6, 9, 9)).astype(np.float32)
    z = rng.standard_normal((2, 10, 9, 9)).astype(np.float32)
    w = sparse_array((10, 6, 3, 3), 0.8, seed=2)
    b = rng.standard_normal(10).astype(np.float32)
    proto = onnx.load_from_string(conv_model(lsc_ort.encode(w, "lsc"), b, residual=residual, pads=[1, 1, 1, 1],
                                             activation="Relu"))
    for value, array in zip(proto.graph.input, (x, z), strict=False):
        value.CopyFrom(helper.make_tensor_value_info(value.name, TensorProto.FLOAT, list(array.shape)))
    feeds = {"X": x, "Z": z} if residual else {"X": x}
    expected = reference_conv(x, w, b, pads=[1, 1, 1, 1]) + (z if residual else 0.0)
    assert_close(run(proto.SerializeToString(), feeds), np.maximum(expected, 0.0))
    x_nan = x.copy()
    x_nan[0, 0, 4, 4] = np.nan  # ReLU keeps NaN, as the native kernels do
    assert np.isnan(run(proto.SerializeToString(), {**feeds, "X": x_nan})).any()


def test_conv_float16_and_structural_zeros() -> None:
    rng = np.random.default_rng(12)
    w = sparse_array((6, 4, 3, 3), 0.6)
    w[:, 2] = 0.0  # input channel 2 feeds nothing
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float16)
    model = with_input_shape(conv_model(lsc_ort.encode(w, "lsc"), dtype=np.float16), "X", list(x.shape))
    y = run(model, {"X": x})
    assert y.dtype == np.float16
    assert_close(y, reference_conv(x.astype(np.float32), w, None), tolerance=2e-3)
    x[0, 2] = np.nan
    assert np.isfinite(run(model, {"X": x})).all()


# --- bad input -----------------------------------------------------------------------------------


def good_blob() -> bytes:
    return lsc_ort.encode(sparse_array((40, 30), 0.8), "lsc")


def compile_fails(model: bytes, match: str, shapes: dict[str, list[int]] | None = None) -> None:
    with pytest.raises(LscImportError, match=match):
        tvm_schedules.compile(onnx.load_from_string(model), "cpu", {"A": [2, 40]} if shapes is None else shapes)


@pytest.mark.parametrize("name,corrupt,message", [
    ("truncated", lambda b: b[:-5], "truncated"),
    ("bit flip", lambda b: b[:300] + bytes([b[300] ^ 4]) + b[301:], "checksum"),
    ("magic", lambda b: b"JUNK" + b[4:], "magic"),
    ("empty", lambda b: b"", "truncated"),
])
def test_malformed_blob_names_op_and_node(name: str, corrupt: Any, message: str) -> None:
    compile_fails(matmul_model(corrupt(good_blob())), rf"\[LSCMatMul\] node 'lsc_mm': bad weight blob: .*{message}")


def test_bad_matmul_attributes_and_shapes() -> None:
    compile_fails(matmul_model(good_blob(), transB=3), r"\[LSCMatMul\] node 'lsc_mm': attribute transB must be 0 or 1")
    compile_fails(matmul_model(good_blob(), beta=2.0), r"unknown attribute\(s\) \['beta'\]")
    compile_fails(matmul_model(good_blob()), r"A has shape \[2, 39\] .* must be 40", {"A": [2, 39]})
    compile_fails(matmul_model(good_blob(), np.zeros(31, np.float32)), r"bias has shape \[31\], expected \[30\]")
    compile_fails(matmul_model(lsc_ort.encode(sparse_array((4, 5, 6), 0.5), "lsc")), "rank 3; LSCMatMul needs a 2-D")
    compile_fails(matmul_model(b"", blob_as_input=True), "must be a constant", {"A": [2, 40], "W": [10]})
    compile_fails(matmul_model(good_blob()), "needs a known rank", {})


def test_bad_head_layouts() -> None:
    def fails(match: str, shape: list[int], model: bytes | None = None, **kwargs: Any) -> None:
        compile_fails(model or matmul_model(good_blob(), **kwargs), rf"\[LSCMatMul\] node 'lsc_mm': {match}",
                      {"A": shape})

    fails("unknown input_layout 'BSHD'", [2, 5, 40], heads=2, input_layout="BSHD")
    fails("unknown output_layout 'BHSS'", [2, 5, 40], heads=2, output_layout="BHSS")
    fails(r"attribute heads must be >= 1 .*, got 0", [2, 5, 40], output_layout="BHSD")
    fails(r"attribute heads \(2\) is only allowed with input_layout or output_layout", [2, 40], heads=2)
    fails(r"input_layout BHSD needs A of rank 4 \[B, H, S, K/H\], got shape \[2, 5, 40\]", [2, 5, 40], heads=2,
          input_layout="BHSD")
    fails(r"A has shape \[2, 4, 5, 10\] but input_layout BHSD with heads 2 .* \[B, 2, S, 20\]", [2, 4, 5, 10],
          heads=2, input_layout="BHSD")
    fails("heads 3 does not divide K = 40", [2, 3, 5, 13], heads=3, input_layout="BHSD")
    fails("heads 4 does not divide N = 30", [2, 5, 40], heads=4, output_layout="BHDS")
    fails(r"output_layout BHSD needs A of rank 3 \[B, S, K\], got shape \[5, 40\]", [5, 40], heads=2,
          output_layout="BHSD")
    fails("a residual Z cannot be combined with output_layout BHSD", [2, 5, 40],
          matmul_model(good_blob(), residual=True, heads=2, output_layout="BHSD"))


def test_bad_norm_and_residuals() -> None:
    scale = np.ones(30, np.float32)

    def fails(match: str, model: bytes, shapes: dict[str, list[int]] | None = None) -> None:
        compile_fails(model, rf"\[LSCMatMul\] node 'lsc_mm': {match}", shapes or {"A": [2, 5, 40], "Z": [2, 5, 30]})

    fails("unknown norm 'RMSNorm'", with_norm(matmul_model(good_blob()), scale, norm="RMSNorm"))
    for epsilon in (float("nan"), float("inf"), -1.0):
        fails(f"attribute epsilon must be finite and >= 0, got {epsilon}",
              with_norm(matmul_model(good_blob()), scale, norm="LayerNorm", epsilon=epsilon))
    fails(r"norm LayerNorm needs input 4 norm_scale \[N\]", with_norm(matmul_model(good_blob()), None, scale,
                                                                      norm="LayerNorm"))
    fails(r"input\(s\) norm_scale given without attribute norm", with_norm(matmul_model(good_blob()), scale))
    fails(r"input\(s\) norm_bias given without attribute norm", with_norm(matmul_model(good_blob()), None, scale))
    fails(r"norm_scale has shape \[31\], expected \[30\]",
          with_norm(matmul_model(good_blob()), np.ones(31, np.float32), norm="LayerNorm"))
    fails(r"norm_bias has shape \[2, 30\], expected \[30\]",
          with_norm(matmul_model(good_blob()), scale, np.ones((2, 30), np.float32), norm="LayerNorm"))
    fails("norm LayerNorm cannot be combined with output_layout BHDS",
          with_norm(matmul_model(good_blob(), heads=2, output_layout="BHDS"), scale, norm="LayerNorm"))
    fails(r"Z has shape \[2, 5, 31\] but its last dimension must be N = 30", matmul_model(good_blob(), residual=True),
          {"A": [2, 5, 40], "Z": [2, 5, 31]})
    fails(r"Z has shape \[3, 5, 30\], which does not broadcast with the product's shape \[2, 5, 30\]",
          matmul_model(good_blob(), residual=True), {"A": [2, 5, 40], "Z": [3, 5, 30]})
    proto = onnx.load_from_string(with_norm(matmul_model(good_blob()), scale, scale, norm="LayerNorm"))
    proto.graph.node[0].input.append("norm_scale")
    fails(r"needs inputs \(A, W_blob\[, bias\[, Z\[, norm_scale\[, norm_bias\]\]\]\]\) and one output, got 7",
          proto.SerializeToString())


def test_conv_residual_must_have_y_shape() -> None:
    blob = lsc_ort.encode(sparse_array((8, 4, 3, 3), 0.5), "lsc")
    compile_fails(conv_model(blob, residual=True), r"\[LSCConv\] node 'lsc_conv': Z has shape \[1, 8, 4, 4\] but Y "
                  r"has shape \[2, 8, 4, 4\]; the residual must have Y's shape",
                  {"X": [2, 4, 6, 6], "Z": [1, 8, 4, 4]})


def test_wrong_domain_is_rejected() -> None:
    proto = onnx.load_from_string(matmul_model(good_blob()))
    proto.graph.node[0].domain = "com.example"
    compile_fails(proto.SerializeToString(), r"\[LSCMatMul\] node 'lsc_mm': the op is in domain 'com.example'")


def test_bad_conv_attributes() -> None:
    blob = lsc_ort.encode(sparse_array((8, 4, 3, 3), 0.5), "lsc")
    x = {"X": [1, 4, 6, 6]}

    def fails(match: str, shapes: dict[str, list[int]] = x, **attributes: Any) -> None:
        compile_fails(conv_model(blob, **attributes), rf"\[LSCConv\] node 'lsc_conv': .*{match}", shapes)

    fails("X has 5 channels", {"X": [1, 5, 6, 6]})
    fails(r"kernel_shape \[5, 5\] does not match", kernel_shape=[5, 5])
    fails("not divisible by group 3", group=3)
    fails("unsupported auto_pad 'SAME'", auto_pad="SAME")
    fails(r"X has shape \[1, 4, 6\]", {"X": [1, 4, 6]})
    fails(r"strides values must lie in \[1, 1024\]", strides=[0, 1])
    fails(r"pads values must lie in \[0, 1024\]", pads=[0, 0, 0, 1 << 30])
    fails(r"attribute pads needs 4 values", pads=[1, 1])
    fails("smaller than the dilated kernel", {"X": [1, 4, 2, 6]})
    compile_fails(conv_model(lsc_ort.encode(np.ones((2, 2), np.float32), "lsc")), "1-D and 2-D convolutions", x)
    compile_fails(conv_model(blob, np.zeros(7, np.float32)), r"B has shape \[7\], expected \[8\]", x)


# --- schedule rules and targets ------------------------------------------------------------------


def spec_func() -> Any:
    spec = MatMulKernel(k=64, n=40)
    return spec, cpu.matmul(spec, cpu.REFERENCE)


def loop_kinds(func: Any) -> set[str]:
    return set(re.findall(r"T\.(parallel|vectorized|thread_binding|unroll)\(", func.script()))


@pytest.mark.parametrize("target,rule", [
    ("cpu", "x86"),
    ({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mattr": ["+avx2", "+fma"]}, "x86"),
    ("arm", "aarch64"),
    ({"kind": "llvm", "mtriple": "riscv64-linux-gnu"}, "generic-cpu"),
    ({"kind": "cuda", "arch": "sm_80"}, "cuda"),
])
def test_rules_chosen_by_kind_and_triple(target: Any, rule: str) -> None:
    resolved = tvm_schedules.resolve_target(target)
    spec, func = spec_func()
    chosen = next(r.name for r in RULES if r.apply(func, resolved) is not None)
    assert chosen == rule
    scheduled = schedule_function(func, resolved)
    assert kernel_spec(scheduled) == spec
    kinds = loop_kinds(scheduled)
    if rule == "cuda":
        assert "thread_binding" in kinds and "T.alloc_shared(" in scheduled.script()
    else:
        assert {"parallel", "vectorized"} <= kinds
    assert loop_kinds(func) <= {"unroll"}  # the reference form is serial


def test_rules_decline_other_functions() -> None:
    from tvm.script import tirx as T

    @T.prim_func
    def plain(a: T.Buffer((4,), "float32")) -> None:
        a[0] = T.float32(1)

    for rule in RULES:
        assert rule.apply(plain, tvm_schedules.resolve_target("cpu")) is None
    cuda_rule = next(r for r in RULES if r.name == "cuda")
    assert cuda_rule.apply(spec_func()[1], tvm_schedules.resolve_target("cpu")) is None


def test_no_rule_for_target_is_a_clear_error() -> None:
    model = with_input_shape(matmul_model(good_blob()), "A", ["M", 40])
    mod = tvm_schedules.from_onnx(onnx.load_from_string(model))
    with pytest.raises(ValueError, match=r"no LSC schedule for target kind 'metal' \(kernel lsc_matmul_40x30\)"):
        apply_schedules(mod, tvm.target.Target({"kind": "metal"}))


def test_from_onnx_keeps_the_weight_compressed() -> None:
    from tvm_schedules.layouts import matmul_layout

    w = sparse_array((256, 256), 0.95)
    blob = lsc_ort.encode(w, "lsc")
    model = with_input_shape(matmul_model(blob), "A", ["M", 256])
    mod = tvm_schedules.from_onnx(onnx.load_from_string(model))
    text = mod.script(show_meta=False)  # (printing the metadata crashes TVM 0.27)
    assert "R.call_tir(cls.lsc_matmul_256x256" in text and "R.matmul" not in text
    specs = [kernel_spec(f) for _, f in mod.functions_items() if kernel_spec(f) is not None]
    assert specs == [MatMulKernel(k=256, n=256)]
    layout = matmul_layout(np.frombuffer(blob, np.uint8), False, "lsc_mm")
    assert layout.nnz == np.count_nonzero(w)
    assert layout.nbytes < 10 * layout.nnz + 16 * 256  # ~8 bytes per stored entry, not 4 per weight


def test_resolve_target() -> None:
    assert tvm_schedules.resolve_target("cpu").kind.name == "llvm"
    arm = tvm_schedules.resolve_target("arm")
    assert str(arm.attrs["mtriple"]) == "aarch64-linux-gnu"
    assert tvm_schedules.resolve_target('{"kind": "llvm"}').kind.name == "llvm"
    assert tvm_schedules.resolve_target("cuda").kind.name == "cuda"
    with pytest.raises(ValueError, match="unknown target 'tpu-9000'"):
        tvm_schedules.resolve_target("tpu-9000")


def test_export_library_and_load(tmp_path: Any) -> None:
    rng = np.random.default_rng(2)
    w = sparse_array((40, 30), 0.8)
    bias = rng.standard_normal(30).astype(np.float32)
    model = with_input_shape(matmul_model(lsc_ort.encode(w, "lsc"), bias, alpha=2.0), "A", ["M", 40])
    path = compiled(model).export_library(tmp_path / "model.so")
    vm = tvm.relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cpu())
    a = rng.standard_normal((3, 40)).astype(np.float32)
    assert_close(vm["main"](tvm.runtime.tensor(a)).numpy(), reference(a, w, bias, 2.0))
    assert [p.name for p in tmp_path.iterdir()] == ["model.so"]  # no temporary left behind


def test_run_checks_feeds() -> None:
    executable = compiled(with_input_shape(matmul_model(good_blob()), "A", ["M", 40]))
    with pytest.raises(ValueError, match=r"missing \['A'\], unknown \['B'\]"):
        tvm_schedules.run(executable, {"B": np.zeros((1, 40), np.float32)})


def test_standard_ops_beside_lsc_ops() -> None:
    """A graph mixing LSC nodes and standard ops (Relu, Add, Gemm) goes through TVM's importer."""
    rng = np.random.default_rng(6)
    w1, w2 = sparse_array((16, 24), 0.8, seed=1), rng.standard_normal((24, 8)).astype(np.float32)
    nodes = [
        helper.make_node("LSCMatMul", ["x", "w1"], ["h"], domain=lsc_ort.DOMAIN, name="fc1"),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
                              [numpy_helper.from_array(np.frombuffer(lsc_ort.encode(w1, "lsc"), np.uint8), "w1"),
                               numpy_helper.from_array(w2, "w2")])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(lsc_ort.DOMAIN, 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    x = rng.standard_normal((5, 16)).astype(np.float32)
    y = run(model.SerializeToString(), {"x": x})
    assert_close(y, np.maximum(x.astype(np.float64) @ w1, 0) @ w2)


def test_activation_rank_from_onnx_shape_inference() -> None:
    """Where TVM's importer loses an activation's shape, the rank onnx infers is used (checked
    at run time by a match_cast)."""
    rng = np.random.default_rng(3)
    w = sparse_array((40, 30), 0.8)
    nodes = [helper.make_node("Identity", ["x"], ["h"]),
             helper.make_node("LSCMatMul", ["h", "w"], ["y"], domain=lsc_ort.DOMAIN, name="fc")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.frombuffer(lsc_ort.encode(w, "lsc"), np.uint8), "w")],
                              value_info=[helper.make_tensor_value_info("h", TensorProto.FLOAT, ["N", 40])])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(lsc_ort.DOMAIN, 1)]
    model = helper.make_model(graph, opset_imports=opsets).SerializeToString()
    x = rng.standard_normal((3, 40)).astype(np.float32)
    assert_close(run(model, {"x": x}), reference(x, w))


# --- LSCAttention --------------------------------------------------------------------------------


def test_attention_matches_numpy() -> None:
    from tests.op_models import attention_model, reference_attention

    rng = np.random.default_rng(3)
    feeds = {"Q": rng.standard_normal((2, 3, 7, 8)).astype(np.float32),
             "K": rng.standard_normal((2, 3, 8, 11)).astype(np.float32),
             "V": rng.standard_normal((2, 3, 11, 5)).astype(np.float32),
             "M": rng.standard_normal((2, 1, 1, 11)).astype(np.float32)}
    model = attention_model(bias=True, scale=0.4)
    shapes = {name: list(value.shape) for name, value in feeds.items()}
    y = tvm_schedules.run(tvm_schedules.compile(onnx.load_from_string(model), "cpu", shapes), feeds)[0]
    assert_close(y, reference_attention(feeds["Q"], feeds["K"], feeds["V"], feeds["M"], 0.4), 1e-5)


@pytest.mark.parametrize("change, match", [
    (lambda n: n.attribute.append(helper.make_attribute("causal", 1)), r"unknown attribute\(s\) \['causal'\]"),
    (lambda n: n.attribute.append(helper.make_attribute("scale", float("inf"))),
     "attribute scale must be a finite float"),
    (lambda n: n.input.pop(), r"needs inputs \(Q, K, V\[, bias\]\)"),
    (lambda n: setattr(n, "domain", "other"), "the op is in domain 'other'"),
])
def test_bad_attention_nodes_name_op_and_node(change: Any, match: str) -> None:
    from tests.op_models import attention_model

    proto = onnx.load_from_string(attention_model())
    change(proto.graph.node[0])
    with pytest.raises(LscImportError, match=rf"\[LSCAttention\] node 'lsc_attention': {match}"):
        tvm_schedules.from_onnx(proto, {"Q": [1, 2, 3, 4], "K": [1, 2, 4, 5], "V": [1, 2, 5, 6]})
