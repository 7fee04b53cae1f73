"""decompress(): back to standard ops, bit-exact weights; and layer_rows() of compressed models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import lsc_ort
from lsc_ort.report import DENSE
from lsc_ort.rewriter import RewriteError, decompress, decompress_model, layer_rows, rewrite, rewrite_model
from tests.rewrite_fixtures import (
    assert_close,
    constant_values,
    ops_of,
    parse,
    random_feeds,
    run_original,
    run_ort,
    run_reference,
    sparse,
)
from tests.tile_models import TILE_M, leading, tile_chain, unpaired_tile_models

UNPAIRED_TILES = list(unpaired_tile_models())

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'


def mixed_model() -> onnx.ModelProto:
    """MatMul, Gemm (transA, transB, alpha, beta, C of [N] and [M, N]), Conv 1-D and 2-D, a shared
    weight and a Constant-node weight."""
    constant = ", ".join(map(str, sparse((24, 16), seed=9).ravel()))
    return parse(
        f"""{HEADER} g (float[3,32] a, float[32,3] at, float[1,4,8,8] x, float[2,4,16] s)
                                 => (float[3,24] y1, float[3,24] y2, float[3,24] y3, float[3,16] y4,
                                     float[1,8,6,6] c2, float[2,8,14] c1) {{
        y1 = MatMul(a, W)
        y2 = Gemm <alpha=0.25, beta=3.0, transA=1> (at, W, C)
        y3 = Gemm <transB=1, beta=0.5> (a, WT, CMN)
        wc = Constant <value = float[24,16] {{{constant}}}> ()
        y4 = MatMul(y1, wc)
        c2 = Conv(x, K2, KB)
        c1 = Conv <strides=[1]> (s, K1)
    }}""",
        W=sparse((32, 24), seed=1),
        C=np.linspace(-1, 1, 24, dtype=np.float32),
        WT=sparse((24, 32), seed=2),
        CMN=np.linspace(-2, 2, 72, dtype=np.float32).reshape(3, 24),
        K2=sparse((8, 4, 3, 3), seed=3),
        KB=np.arange(8, dtype=np.float32),
        K1=sparse((8, 4, 3), seed=4),
    )


def test_decompress_restores_bit_exact_weights() -> None:
    model = mixed_model()
    compressed = rewrite(model, codec="csr")
    assert "MatMul" not in ops_of(compressed) and "Conv" not in ops_of(compressed)
    restored = decompress(compressed)
    assert all(node.domain == "" for node in restored.graph.node)
    assert all(o.domain != lsc_ort.DOMAIN for o in restored.opset_import)
    original, back = constant_values(model), constant_values(restored)
    for name in ("W", "WT", "K2", "K1", "wc"):
        assert back[name].dtype == original[name].dtype
        assert back[name].tobytes() == original[name].tobytes(), name
    assert sum(t.name.endswith("_lsc_blob") for t in restored.graph.initializer) == 0
    onnx.checker.check_model(restored)
    feeds = random_feeds(model)
    for got, want in zip(run_original(restored, feeds), run_original(model, feeds), strict=True):
        assert_close(got, want)


@pytest.mark.parametrize("activation", ["Relu", "Gelu"])
def test_decompress_expands_the_matmul_activation(activation: str) -> None:
    gelu = "d = Div(h, s2) e = Erf(d) p = Add(e, one) m = Mul(h, p) y = Mul(m, half)"
    body = "y = Relu(h)" if activation == "Relu" else gelu
    model = parse(
        f'<ir_version: 8, opset_import: ["" : 17]> g (float[3,32] a, float[3,24] r) => (float[3,24] y) '
        f"{{ mm = MatMul(a, W) h1 = Add(mm, b) h = Add(h1, r) {body} }}",
        W=sparse((32, 24), 0.8), b=np.linspace(-1, 1, 24).astype(np.float32), s2=np.array(np.sqrt(2), np.float32),
        one=np.array(1, np.float32), half=np.array(0.5, np.float32),
    )
    compressed = rewrite(model)
    assert ops_of(compressed) == ["LSCMatMul"]
    restored = decompress(compressed)
    assert all(node.domain == "" for node in restored.graph.node)
    assert activation in ops_of(restored) or "Erf" in ops_of(restored)
    onnx.checker.check_model(restored)
    feeds = random_feeds(model)
    for got, want in zip(run_original(restored, feeds), run_original(model, feeds), strict=True):
        assert_close(got, want)


@pytest.mark.parametrize("codec", lsc_ort.available_codecs())
def test_round_trip_every_codec(codec: str) -> None:
    model = mixed_model()
    restored = decompress(rewrite(model, codec=codec))
    for name in ("W", "WT", "K2", "K1"):
        assert constant_values(restored)[name].tobytes() == constant_values(model)[name].tobytes()


def test_decompress_without_custom_ops_changes_nothing() -> None:
    model = mixed_model()
    result = decompress_model(model)
    assert result.nodes == 0
    assert result.model == model


def lsc_matmul_model(
    a_shape: str, z_shape: list[int] | None = None, norm_inputs: int = 0, opset: int = 17, **attributes: object
) -> onnx.ModelProto:
    """One LSCMatMul (K = 6, N = 8) of the input ``a``; ``bias=True`` adds a bias, ``z_shape`` a
    residual input ``z``, ``norm_inputs`` the initializers ``norm_scale`` (1) and ``norm_bias`` (2)."""
    bias = "bias" in attributes
    attributes.pop("bias", None)
    w = sparse((8, 6), 0.5) if attributes.get("transB") else sparse((6, 8), 0.5)
    blob = np.frombuffer(lsc_ort.encode(w, "csr"), np.uint8)
    inits = [onnx.numpy_helper.from_array(blob, "W_lsc_blob")]
    inputs = ["a", "W_lsc_blob", "b" if bias else "", "z" if z_shape else ""]
    if bias:
        inits.append(onnx.numpy_helper.from_array(np.arange(8, dtype=np.float32), "b"))
    for name, values in [("norm_scale", np.linspace(0.5, 2, 8)), ("norm_bias", np.linspace(1, -1, 8))][:norm_inputs]:
        inits.append(onnx.numpy_helper.from_array(values.astype(np.float32), name))
        inputs.append(name)
    while not inputs[-1]:
        inputs.pop()
    dims = [int(d) for d in a_shape.split(",")]
    graph_inputs = [helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, dims)]
    if z_shape:
        graph_inputs.append(helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, z_shape))
    node = helper.make_node("LSCMatMul", inputs, ["y"], domain=lsc_ort.DOMAIN, name="mm", **attributes)
    graph = helper.make_graph(
        [node], "g", graph_inputs, [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], inits
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(lsc_ort.DOMAIN, 1)]
    )


@pytest.mark.parametrize("a_shape", ["2,6", "3,2,6", "6"])
@pytest.mark.parametrize(
    "attributes",
    [{}, {"alpha": 0.5}, {"transB": 1}, {"bias": True}, {"alpha": 2.0, "transB": 1, "bias": True}],
)
def test_decompress_lsc_matmul_forms(a_shape: str, attributes: dict) -> None:
    model = lsc_matmul_model(a_shape, **attributes)
    restored = decompress(model)
    ops = ops_of(restored)
    if not attributes:
        assert ops == ["MatMul"]
    elif a_shape == "2,6":
        assert ops == ["Gemm"]
    else:
        assert "Gemm" not in ops and "MatMul" in ops
    feeds = {
        "a": np.random.default_rng(0).standard_normal([int(d) for d in a_shape.split(",")]).astype(np.float32)
    }
    for got, want in zip(run_original(restored, feeds), run_reference(model, feeds), strict=True):
        assert_close(got, want)


NORM_CASES = {  # A, Z (broadcasting with the product), norm inputs, attributes
    "Z-1SN-gelu": ("2,5,6", [1, 5, 8], 2, {"bias": True, "activation": "Gelu"}),
    "A-1SK-relu": ("1,5,6", [2, 5, 8], 1, {"activation": "Relu", "epsilon": 0.25}),
    "gemm-Z-N": ("3,6", [8], 2, {"bias": True, "alpha": 0.5}),
    "Z-of-higher-rank": ("3,6", [2, 3, 8], 1, {"transB": 1}),
    "no-Z": ("2,5,6", None, 2, {"transB": 1, "bias": True, "epsilon": 0.0}),
    "no-norm-Z-1SN": ("2,5,6", [1, 5, 8], 0, {"bias": True, "activation": "Relu"}),
}


@pytest.mark.parametrize("case", NORM_CASES)
def test_decompress_norm_and_broadcast_residual(case: str) -> None:
    a_shape, z_shape, norm_inputs, attributes = NORM_CASES[case]
    model = lsc_matmul_model(a_shape, z_shape, norm_inputs, **({"norm": "LayerNorm"} if norm_inputs else {}),
                             **attributes)
    y_shape = np.broadcast_shapes((*map(int, a_shape.split(",")[:-1]), 8), tuple(z_shape or [8]))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, y_shape))
    restored = decompress(model)
    ops = ops_of(restored)
    assert all(node.domain == "" for node in restored.graph.node)
    assert ops.count("LayerNormalization") == bool(norm_inputs) and ops.count("Add") >= bool(z_shape)
    if norm_inputs:
        layer_norm = restored.graph.node[-1]
        assert layer_norm.op_type == "LayerNormalization" and list(layer_norm.input)[1:] == [
            "norm_scale", "norm_bias"][:norm_inputs]
        assert helper.get_node_attr_value(layer_norm, "axis") == -1
        assert helper.get_node_attr_value(layer_norm, "epsilon") == pytest.approx(attributes.get("epsilon", 1e-5))
    onnx.checker.check_model(restored, full_check=True)  # strict shape inference agrees with y's broadcast shape
    feeds = random_feeds(model)
    (want,) = run_reference(model, feeds)
    for (got,) in (run_original(restored, feeds), run_ort(restored, feeds)):
        assert got.shape == want.shape == y_shape
        assert_close(got, want)


@pytest.mark.parametrize(
    "opset,norm_inputs,attributes,message",
    [
        (16, 1, {"norm": "LayerNorm"}, "norm LayerNorm becomes LayerNormalization, which needs default-domain opset "
                                       ">= 17; the model imports opset 16"),
        (17, 1, {"norm": "LayerNorm", "heads": 2, "output_layout": "BHSD"},
         "norm LayerNorm cannot be combined with output_layout BHSD"),
        (17, 1, {"norm": "RMSNorm"}, "unknown norm 'RMSNorm'"),
        (17, 0, {"norm": "LayerNorm"}, r"norm LayerNorm needs input 4 norm_scale \[N\]"),
        (17, 2, {}, r"input\(s\) norm_scale, norm_bias given without attribute norm"),
        (17, 1, {"norm": "LayerNorm", "epsilon": -1.0}, "attribute epsilon must be finite and >= 0, got -1.0"),
    ],
)
def test_decompress_norm_errors_name_the_node(opset: int, norm_inputs: int, attributes: dict, message: str) -> None:
    model = lsc_matmul_model("2,5,6", None, norm_inputs, opset, **attributes)
    with pytest.raises(RewriteError, match=rf"node 'mm' \(LSCMatMul\): {message}"):
        decompress(model)


HEAD_LAYOUTS = [("BHSD", ""), ("", "BHSD"), ("", "BHDS"), ("BHSD", "BHSD"), ("BHSD", "BHDS")]


def head_layout_model(layout_in: str, layout_out: str, a_shape: list[int], residual: bool = False,
                      **attributes: object) -> onnx.ModelProto:
    """One LSCMatMul (K = 12, N = 6, bias) with 3 heads in the given layouts; A and Z are inputs,
    Y declared of the layout's shape when A's shape fits the layouts."""
    w = sparse((6, 12), 0.5) if attributes.get("transB") else sparse((12, 6), 0.5)
    blob = np.frombuffer(lsc_ort.encode(w, "csr"), np.uint8)
    inits = [onnx.numpy_helper.from_array(blob, "W_lsc_blob"),
             onnx.numpy_helper.from_array(np.linspace(-1, 1, 6, dtype=np.float32), "b")]
    inputs = [helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, a_shape)]
    y_shape = None
    if len(a_shape) == (4 if layout_in else 3):
        batch, seq = (a_shape[0], a_shape[2]) if layout_in else (a_shape[0], a_shape[1])
        y_shape = {"": [batch, seq, 6], "BHSD": [batch, 3, seq, 2], "BHDS": [batch, 3, 2, seq]}.get(layout_out)
        if residual:
            inputs.append(helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [batch, seq, 6]))
    layouts = {"input_layout": layout_in, "output_layout": layout_out}
    node = helper.make_node("LSCMatMul", ["a", "W_lsc_blob", "b", *(["z"] if residual else [])], ["y"],
                            domain=lsc_ort.DOMAIN, name="attn_q", heads=3,
                            **{k: v for k, v in layouts.items() if v}, **attributes)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT,
                                                                                   y_shape)], inits)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(lsc_ort.DOMAIN, 1)]
    )


@pytest.mark.parametrize("layouts", HEAD_LAYOUTS, ids=["-".join(x or "plain" for x in p) for p in HEAD_LAYOUTS])
@pytest.mark.parametrize(
    "attributes", [{}, {"alpha": 0.5, "activation": "Gelu"}, {"transB": 1, "activation": "Relu"}]
)
@pytest.mark.parametrize("batch,seq", [(1, 1), (2, 5), (2, 17)])
def test_decompress_head_layouts(layouts: tuple[str, str], attributes: dict, batch: int, seq: int) -> None:
    layout_in, layout_out = layouts
    a_shape = [batch, 3, seq, 4] if layout_in else [batch, seq, 12]
    model = head_layout_model(layout_in, layout_out, a_shape, **attributes)
    restored = decompress(model)
    ops = ops_of(restored)
    assert all(node.domain == "" for node in restored.graph.node)
    if layout_in:
        assert ops[:2] == ["Transpose", "Reshape"]
    if layout_out:
        assert ops[-2:] == ["Reshape", "Transpose"]
    assert ops.count("Transpose") == bool(layout_in) + bool(layout_out) + bool(attributes.get("transB"))
    onnx.checker.check_model(restored, full_check=True)  # strict shape inference agrees with y's declared shape
    feeds = random_feeds(model)
    for got, want in zip(run_original(restored, feeds), run_reference(model, feeds), strict=True):
        assert got.shape == want.shape == tuple(d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim)
        assert_close(got, want)


def test_decompress_head_layout_with_residual() -> None:
    model = head_layout_model("BHSD", "", [2, 3, 5, 4], residual=True, activation="Relu")
    restored = decompress(model)
    assert ops_of(restored)[:2] == ["Transpose", "Reshape"] and "Relu" in ops_of(restored)
    feeds = random_feeds(model)
    for got, want in zip(run_original(restored, feeds), run_reference(model, feeds), strict=True):
        assert_close(got, want)


@pytest.mark.parametrize(
    "layouts,a_shape,residual,message",
    [
        (("", "BHSD"), [2, 5, 12], True, "a residual Z cannot be combined with output_layout BHSD"),
        (("", "BHDS"), [5, 12], False, r"output_layout BHDS needs A of rank 3 \[B, S, K\], got rank 2"),
        (("BHSD", ""), [2, 5, 12], False, r"input_layout BHSD needs A of rank 4 \[B, H, S, K/H\], got rank 3"),
        (("BSHD", ""), [2, 3, 5, 4], False, "unknown input_layout 'BSHD'"),
    ],
)
def test_decompress_head_layout_errors_name_the_node(layouts: tuple[str, str], a_shape: list[int], residual: bool,
                                                     message: str) -> None:
    model = head_layout_model(*layouts, a_shape, residual=residual)
    with pytest.raises(RewriteError, match=rf"node 'attn_q' \(LSCMatMul\): {message}"):
        decompress(model)


# --- row tiles: TILES pairs hand the tensor between them on plain ---------------------------------


@pytest.mark.parametrize("m", TILE_M)
@pytest.mark.parametrize("dims", [(12, 15, 7), (12, 15, 9, 6)], ids=["two", "three"])
def test_decompress_tile_chain(m: int, dims: tuple[int, ...]) -> None:
    chain = tile_chain([*leading(m, 3), dims[0]], dims)
    chain.model.graph.output[0].CopyFrom(
        helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [*leading(m, 3), dims[-1]])
    )
    restored = decompress(chain.model)
    ops = ops_of(restored)
    assert all(node.domain == "" for node in restored.graph.node)
    assert ops.count("MatMul") == len(dims) - 1 and "Transpose" not in ops and "Reshape" not in ops
    assert not any(a.name.endswith("_layout") for node in restored.graph.node for a in node.attribute)
    onnx.checker.check_model(restored, full_check=True)
    feeds = random_feeds(chain.model)
    (got,) = run_original(restored, feeds)
    (want,) = run_reference(chain.model, feeds)
    assert_close(got, want)
    assert_close(got, chain.expected(feeds["x"]))


def test_decompress_tile_chain_with_head_layouts_outside() -> None:
    chain = tile_chain([2, 3, 70, 4], (12, 15, 9), input_layout="BHSD", output_layout="BHSD", heads=3)
    restored = decompress(chain.model)
    ops = ops_of(restored)
    assert ops[:2] == ["Transpose", "Reshape"] and ops[-2:] == ["Reshape", "Transpose"] and ops.count("Transpose") == 2
    feeds = random_feeds(chain.model)
    (got,) = run_original(restored, feeds)
    assert got.shape == (2, 3, 70, 3)
    assert_close(got, run_reference(chain.model, feeds)[0])


@pytest.mark.parametrize("case", UNPAIRED_TILES)
def test_decompress_rejects_unpaired_tiles(case: str) -> None:
    model, node, message = unpaired_tile_models()[case]
    with pytest.raises(RewriteError, match=rf"node '{node}' \(LSCMatMul\): {message}"):
        decompress(model)


def test_decompress_tiles_output_with_residual_names_the_node() -> None:
    chain = tile_chain([2, 5, 12], (12, 15, 7))
    chain.model.graph.input.append(helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [2, 5, 15]))
    chain.model.graph.node[0].input.append("z")
    with pytest.raises(RewriteError, match=r"node 'l0' \(LSCMatMul\): a residual Z cannot be combined with "
                       "output_layout TILES"):
        decompress(chain.model)


def test_decompress_runtime_blob_names_the_node() -> None:
    model = lsc_matmul_model("2,6")
    model.graph.ClearField("initializer")
    model.graph.input.append(helper.make_tensor_value_info("W_lsc_blob", onnx.TensorProto.UINT8, None))
    model.graph.node[0].name = "lsc7"
    with pytest.raises(RewriteError, match=r"node 'lsc7' \(LSCMatMul\): .*not a constant"):
        decompress(model)


def test_layer_rows_of_compressed_and_dense_models() -> None:
    model = mixed_model()
    dense_rows = layer_rows(model)
    assert [row.codec for row in dense_rows] == [DENSE] * 6
    assert [row.shared for row in dense_rows] == [False, True, False, False, False, False]
    result = rewrite_model(model, codec="csr")
    rows = layer_rows(result.model)
    assert [row.op for row in rows] == ["LSCMatMul"] * 4 + ["LSCConv"] * 2
    assert [row.codec for row in rows] == ["csr"] * 6
    for mine, theirs in zip(rows, result.layers, strict=True):
        assert (mine.shape, mine.encoded_bytes, mine.dense_bytes, mine.shared) == (
            theirs.shape,
            theirs.encoded_bytes,
            theirs.dense_bytes,
            theirs.shared,
        )
        assert mine.sparsity == pytest.approx(theirs.sparsity)
        assert mine.entropy_bound_bytes == pytest.approx(theirs.entropy_bound_bytes)
