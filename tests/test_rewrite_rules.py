"""The rewrite rules on tiny models: when each fires (and when it must not), and the numerics."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import lsc_ort
from lsc_ort.report import DENSE
from lsc_ort.rewriter import RewriteError, rewrite, rewrite_model
from tests.rewrite_fixtures import assert_same_outputs, constant_values, ops_of, parse, random_feeds, sparse

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'


def matmul_model(
    weight_shape: tuple[int, ...] = (32, 24),
    a_shape: str = "2,32",
    y_shape: str = "2,24",
    sparsity: float = 0.9,
) -> onnx.ModelProto:
    return parse(
        f"{HEADER} g (float[{a_shape}] a) => (float[{y_shape}] y) {{ y = MatMul(a, W) }}",
        W=sparse(weight_shape, sparsity),
    )


# --- MatMul ------------------------------------------------------------------------------------


def test_matmul_fires_and_computes_the_same() -> None:
    model = matmul_model()
    result = rewrite_model(model)
    assert result.fired == {"matmul": 1}
    assert ops_of(result.model) == ["LSCMatMul"]
    node = result.model.graph.node[0]
    assert (node.domain, list(node.input), list(node.output)) == (lsc_ort.DOMAIN, ["a", "W_lsc_blob"], ["y"])
    assert [t.name for t in result.model.graph.initializer] == ["W_lsc_blob"]
    blob = numpy_helper.to_array(result.model.graph.initializer[0])
    assert blob.dtype == np.uint8 and blob.ndim == 1
    np.testing.assert_array_equal(lsc_ort.decode(blob), constant_values(model)["W"])
    assert any(o.domain == lsc_ort.DOMAIN and o.version == 1 for o in result.model.opset_import)
    assert_same_outputs(model, result.model, random_feeds(model))


@pytest.mark.parametrize("a_shape,y_shape", [("32", "24"), ("3,2,32", "3,2,24"), ("2,1,5,32", "2,1,5,24")])
def test_matmul_with_any_rank_of_a(a_shape: str, y_shape: str) -> None:
    model = matmul_model(a_shape=a_shape, y_shape=y_shape)
    result = rewrite_model(model)
    assert result.fired == {"matmul": 1}
    assert_same_outputs(model, result.model, random_feeds(model))


def test_matmul_constant_first_input_does_not_fire() -> None:
    model = parse(f"{HEADER} g (float[32,4] x) => (float[24,4] y) {{ y = MatMul(W, x) }}", W=sparse((24, 32)))
    result = rewrite_model(model)
    assert result.fired["matmul"] == 0
    assert "is not a constant" in result.declined[0][1]
    assert result.model == model


def test_matmul_runtime_weight_does_not_fire() -> None:
    model = parse(f"{HEADER} g (float[2,32] a, float[32,24] w) => (float[2,24] y) {{ y = MatMul(a, w) }}")
    assert rewrite_model(model).fired["matmul"] == 0


def test_matmul_3d_weight_does_not_fire() -> None:
    model = parse(
        f"{HEADER} g (float[3,2,32] a) => (float[3,2,24] y) {{ y = MatMul(a, W) }}", W=sparse((3, 32, 24))
    )
    result = rewrite_model(model)
    assert result.fired["matmul"] == 0
    assert "rank 3" in result.declined[0][1]


def test_matmul_double_weight_does_not_fire() -> None:
    model = parse(
        f"{HEADER} g (double[2,32] a) => (double[2,24] y) {{ y = MatMul(a, W) }}",
        W=sparse((32, 24)).astype(np.float64),
    )
    result = rewrite_model(model)
    assert result.fired["matmul"] == 0
    assert "double" in result.declined[0][1]


GELU_FORMS = {
    # what exporters write (torch, HF): (y * (1 + erf(y / sqrt(2)))) * 0.5
    "erf-div": "d = Div(h, s2) e = Erf(d) p = Add(e, one) m = Mul(h, p) y = Mul(m, half)",
    "erf-mul-first": "d = Mul(h, is2) e = Erf(d) p = Add(one, e) m = Mul(half, h) y = Mul(p, m)",
    "onnx-gelu": "y = Gelu(h)",
}


@pytest.mark.parametrize("form", sorted(GELU_FORMS))
def test_matmul_bias_gelu_becomes_one_op(form: str) -> None:
    opset = 20 if form == "onnx-gelu" else 17
    body = GELU_FORMS[form]
    model = parse(
        f'<ir_version: 9, opset_import: ["" : {opset}]> g (float[3,32] a) => (float[3,24] y) '
        f"{{ mm = MatMul(a, W) h = Add(mm, b) {body} }}",
        W=sparse((32, 24), 0.8), b=np.linspace(-1, 1, 24).astype(np.float32),
        s2=np.array(np.sqrt(2), np.float32), is2=np.array(1 / np.sqrt(2), np.float32),
        one=np.array(1, np.float32), half=np.array(0.5, np.float32),
    )
    result = rewrite_model(model)
    assert ops_of(result.model) == ["LSCMatMul"]
    node = result.model.graph.node[0]
    assert list(node.input)[2:] == ["b"] and list(node.output) == ["y"]
    assert {a.name: helper.get_attribute_value(a) for a in node.attribute} == {"activation": b"Gelu"}
    assert_same_outputs(model, result.model, random_feeds(model))


@pytest.mark.parametrize("body,why", [
    ("d = Div(h, two) e = Erf(d) p = Add(e, one) m = Mul(h, p) y = Mul(m, half)", "not sqrt(2)"),
    ("d = Div(h, s2) e = Erf(d) p = Add(e, one) m = Mul(h, p) y = Mul(m, one)", "not 0.5"),
    ("d = Div(h, s2) e = Erf(d) p = Add(e, half) m = Mul(h, p) y = Mul(m, half)", "not 1 + erf"),
    ("d = Div(h, s2) e = Erf(d) p = Add(e, one) m = Mul(d, p) y = Mul(m, half)", "not y * (1 + erf)"),
])
def test_near_gelu_patterns_stay(body: str, why: str) -> None:
    model = parse(
        f"{HEADER} g (float[3,32] a) => (float[3,24] y) {{ mm = MatMul(a, W) h = Add(mm, b) {body} }}",
        W=sparse((32, 24), 0.8), b=np.zeros(24, np.float32), s2=np.array(np.sqrt(2), np.float32),
        two=np.array(2, np.float32), one=np.array(1, np.float32), half=np.array(0.5, np.float32),
    )
    result = rewrite_model(model)
    assert ops_of(result.model)[0] == "LSCMatMul" and "Erf" in ops_of(result.model), why
    assert_same_outputs(model, result.model, random_feeds(model))


def test_matmul_bias_residual_and_gelu_become_one_op() -> None:
    model = parse(
        f"{HEADER} g (float[3,32] a, float[3,24] r) => (float[3,24] y) "
        "{ mm = MatMul(a, W) h0 = Add(b, mm) h = Add(r, h0) "
        "d = Div(h, s2) e = Erf(d) p = Add(e, one) m = Mul(h, p) y = Mul(m, half) }",
        W=sparse((32, 24), 0.8), b=np.linspace(-1, 1, 24).astype(np.float32), s2=np.array(np.sqrt(2), np.float32),
        one=np.array(1, np.float32), half=np.array(0.5, np.float32),
    )
    result = rewrite_model(model)
    assert ops_of(result.model) == ["LSCMatMul"]
    assert list(result.model.graph.node[0].input)[2:] == ["b", "r"]
    assert_same_outputs(model, result.model, random_feeds(model))


@pytest.mark.parametrize(("a_shape", "r_shape", "y_shape"), [
    ("3,32", "3,24", "3,24"),  # proven equal
    ("3,32", "1,24", "3,24"),  # broadcast
    ("B,S,32", "C,S,24", "D,S,24"),  # batch dims of other names (a mask broadcast renames them)
    ("1,S,32", "B,S,24", "B,S,24"),  # the product broadcasts
])
def test_matmul_residual_without_bias_is_absorbed(a_shape: str, r_shape: str, y_shape: str) -> None:
    model = parse(f"{HEADER} g (float[{a_shape}] a, float[{r_shape}] r) => (float[{y_shape}] y) "
                  "{ mm = MatMul(a, W) y = Add(mm, r) }", W=sparse((32, 24), 0.8))
    result = rewrite_model(model)
    assert ops_of(result.model) == ["LSCMatMul"] and list(result.model.graph.node[0].input)[2:] == ["", "r"]
    feeds = random_feeds(model)
    if "S" in a_shape:
        feeds = {"a": np.linspace(-1, 1, 5 * 32, dtype=np.float32).reshape(1, 5, 32).repeat(2 - (a_shape[0] == "1"), 0),
                 "r": np.linspace(-1, 1, 2 * 5 * 24, dtype=np.float32).reshape(2, 5, 24)}
    assert_same_outputs(model, result.model, feeds)


@pytest.mark.parametrize(("r_shape", "y_shape"), [("3,1", "3,24"), ("2,24", "3,24"), ("3,24,1", "3,24,24")])
def test_matmul_residual_that_cannot_broadcast_or_widens_n_stays(r_shape: str, y_shape: str) -> None:
    model = parse(f"{HEADER} g (float[3,32] a, float[{r_shape}] r) => (float[{y_shape}] y) "
                  "{ mm = MatMul(a, W) y = Add(mm, r) }", W=sparse((32, 24), 0.8))
    assert ops_of(rewrite_model(model).model) == ["LSCMatMul", "Add"]


def _layer_norm_model(norm: str = "y = LayerNormalization <axis = -1, epsilon = 0.001> (h, s, t)",
                      s_shape: int = 24, t: bool = True) -> onnx.ModelProto:
    rng = np.random.default_rng(4)
    extra = {"t": rng.standard_normal(24).astype(np.float32)} if t else {}
    return parse(
        f"{HEADER} g (float[B,5,32] a, float[C,5,24] r) => (float[D,5,24] y) "
        f"{{ mm = MatMul(a, W) h0 = Add(mm, b) h = Add(r, h0) {norm} }}",
        W=sparse((32, 24), 0.8), b=np.linspace(-1, 1, 24).astype(np.float32),
        s=rng.standard_normal(s_shape).astype(np.float32), **extra,
    )


@pytest.mark.parametrize("norm", ["y = LayerNormalization <axis = -1, epsilon = 0.001> (h, s, t)",
                                  "y = LayerNormalization <axis = 2> (h, s)"])
def test_matmul_bias_residual_and_layer_norm_become_one_op(norm: str) -> None:
    """MatMul + bias Add + a residual Add whose batch dims differ in name + LayerNormalization
    (last axis, constant [N] scale and bias): one LSCMatMul with norm="LayerNorm"."""
    model = _layer_norm_model(norm, t="t)" in norm)
    result = rewrite_model(model)
    assert ops_of(result.model) == ["LSCMatMul"]
    node = result.model.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["norm"] == b"LayerNorm" and attrs["epsilon"] == pytest.approx(1e-3 if "0.001" in norm else 1e-5)
    assert list(node.input)[2:] == (["b", "r", "s", "t"] if "t)" in norm else ["b", "r", "s"])
    assert_same_outputs(model, result.model, {"a": np.linspace(-2, 2, 2 * 5 * 32, dtype=np.float32).reshape(2, 5, 32),
                                              "r": np.linspace(-1, 3, 2 * 5 * 24, dtype=np.float32).reshape(2, 5, 24)})


@pytest.mark.parametrize(("unnamed", "absorbed"), [(["", ""], True), (["mean"], False)])
def test_layer_norm_with_optional_outputs(unnamed: list[str], absorbed: bool) -> None:
    """A LayerNormalization whose optional outputs Mean and InvStdDev are listed unnamed is
    absorbed as one without them; a named one (a tensor the graph may use) keeps the node."""
    model = _layer_norm_model()
    model.graph.node[-1].output.extend(unnamed)
    result = rewrite_model(model)
    assert ops_of(result.model) == (["LSCMatMul"] if absorbed else ["LSCMatMul", "LayerNormalization"])
    assert_same_outputs(model, result.model, {"a": np.linspace(-2, 2, 2 * 5 * 32, dtype=np.float32).reshape(2, 5, 32),
                                              "r": np.linspace(-1, 3, 2 * 5 * 24, dtype=np.float32).reshape(2, 5, 24)})


@pytest.mark.parametrize(("norm", "s_shape"), [
    ("y = LayerNormalization <axis = 1> (h, s, t)", 24),  # not the last axis
    ("y = LayerNormalization <stash_type = 0> (h, s, t)", 24),  # not computed in float32
    ("y = LayerNormalization (h, s, t)", 1),  # a scale that broadcasts, not [N]
    ("s2 = Relu(s) y = LayerNormalization (h, s2, t)", 24),  # a scale computed at run time
])
def test_layer_norms_the_op_does_not_compute_stay(norm: str, s_shape: int) -> None:
    model = _layer_norm_model(norm, s_shape)
    assert ops_of(rewrite_model(model).model)[-1] == "LayerNormalization"


def test_matmul_relu_is_absorbed() -> None:
    model = parse(f"{HEADER} g (float[3,32] a) => (float[3,24] y) {{ mm = MatMul(a, W) y = Relu(mm) }}",
                  W=sparse((32, 24), 0.8))
    result = rewrite_model(model)
    assert ops_of(result.model) == ["LSCMatMul"]
    assert_same_outputs(model, result.model, random_feeds(model))


def test_float16_weights() -> None:
    model = parse(
        f"{HEADER} g (float16[4,64] a) => (float16[4,48] y) {{ y = MatMul(a, W) }}",
        W=sparse((64, 48), dtype=np.float16),
    )
    result = rewrite_model(model)
    assert result.fired == {"matmul": 1}
    assert lsc_ort.decode(numpy_helper.to_array(result.model.graph.initializer[0])).dtype == np.float16
    assert_same_outputs(model, result.model, random_feeds(model), tolerance=1e-2)


# --- Gemm --------------------------------------------------------------------------------------

M, K, N = 3, 40, 24
C_SHAPES = {
    "none": None,
    "[N]": (N,),
    "[1,N]": (1, N),
    "[M,N]": (M, N),
    "scalar": (),
    "[1]": (1,),
    "[M,1]": (M, 1),
    "[1,1]": (1, 1),
    "runtime": "runtime",
}


def gemm_model(alpha: float, beta: float, trans_a: int, trans_b: int, c: str) -> onnx.ModelProto:
    a_shape = f"{K},{M}" if trans_a else f"{M},{K}"
    inputs = [f"float[{a_shape}] a"]
    initializers = {"B": sparse((N, K) if trans_b else (K, N), seed=3)}
    args = "a, B"
    if c == "runtime":
        inputs.append(f"float[{M},{N}] c")
        args += ", c"
    elif C_SHAPES[c] is not None:
        initializers["C"] = np.random.default_rng(4).standard_normal(C_SHAPES[c]).astype(np.float32)
        args += ", C"
    attrs = f"<alpha={alpha}, beta={beta}, transA={trans_a}, transB={trans_b}>"
    return parse(
        f"{HEADER} g ({', '.join(inputs)}) => (float[{M},{N}] y) {{ y = Gemm {attrs} ({args}) }}",
        **initializers,
    )


@pytest.mark.parametrize(
    "alpha,beta,trans_a,trans_b,c",
    [
        (alpha, beta, ta, tb, c)
        for alpha, beta, ta, tb in itertools.product((1.0, 0.5), (1.0, 2.5, 0.0), (0, 1), (0, 1))
        for c in C_SHAPES
    ],
)
def test_gemm_attributes_and_c(alpha: float, beta: float, trans_a: int, trans_b: int, c: str) -> None:
    model = gemm_model(alpha, beta, trans_a, trans_b, c)
    result = rewrite_model(model)
    assert result.fired == {"gemm": 1}
    out = result.model
    lsc = [n for n in out.graph.node if n.op_type == "LSCMatMul"]
    assert len(lsc) == 1
    attrs = {a.name: helper.get_attribute_value(a) for a in lsc[0].attribute}
    assert attrs.get("alpha", 1.0) == pytest.approx(alpha)
    assert attrs.get("transB", 0) == trans_b
    ops = ops_of(out)
    assert ("Transpose" in ops) == bool(trans_a)
    folded = c not in ("none", "runtime", "[M,N]", "[M,1]") and beta != 0.0
    needs_add = c in ("runtime", "[M,N]", "[M,1]") and beta != 0.0
    assert (len(lsc[0].input) == 3) == folded
    assert ("Add" in ops) == needs_add
    assert ("Mul" in ops) == (needs_add and beta != 1.0)
    assert "Gemm" not in ops
    if folded:
        bias = constant_values(out)[lsc[0].input[2]]
        assert bias.shape == (N,) and bias.dtype == np.float32
    assert_same_outputs(model, out, random_feeds(model))


def test_gemm_bias_vector_is_reused_when_it_needs_no_folding() -> None:
    model = gemm_model(1.0, 1.0, 0, 1, "[N]")
    out = rewrite(model)
    assert list(out.graph.node[0].input) == ["a", "B_lsc_blob", "C"]
    assert sorted(t.name for t in out.graph.initializer) == ["B_lsc_blob", "C"]


def test_gemm_runtime_b_does_not_fire() -> None:
    model = parse(f"{HEADER} g (float[3,8] a, float[8,4] b) => (float[3,4] y) {{ y = Gemm(a, b) }}")
    assert rewrite_model(model).fired["gemm"] == 0


# --- Conv --------------------------------------------------------------------------------------

CONV_CASES = {
    "2d": ("float[1,4,9,9] x", "float[1,8,9,9] y", (8, 4, 3, 3), "<pads=[1,1,1,1]>", True),
    "2d-no-bias": ("float[2,4,9,9] x", "float[2,8,7,7] y", (8, 4, 3, 3), "", False),
    "2d-stride-dilation": (
        "float[1,4,12,11] x",
        "float[1,8,4,4] y",
        (8, 4, 3, 3),
        "<strides=[2,2], dilations=[2,2], pads=[0,1,1,0]>",
        True,
    ),
    "2d-groups": ("float[1,8,6,6] x", "float[1,8,6,6] y", (8, 2, 3, 3), "<group=4, pads=[1,1,1,1]>", True),
    "depthwise": ("float[1,8,6,6] x", "float[1,8,6,6] y", (8, 1, 3, 3), "<group=8, pads=[1,1,1,1]>", True),
    "same-upper": (
        "float[1,4,7,7] x",
        "float[1,8,4,4] y",
        (8, 4, 3, 3),
        '<auto_pad="SAME_UPPER", strides=[2,2]>',
        True,
    ),
    "1x1": ("float[1,16,5,5] x", "float[1,8,5,5] y", (8, 16, 1, 1), "", True),
    "1d": ("float[2,4,20] x", "float[2,8,18] y", (8, 4, 3), "", True),
    "1d-stride": ("float[1,4,21] x", "float[1,8,10] y", (8, 4, 3), "<strides=[2], pads=[1,0]>", True),
}


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv(case: str) -> None:
    x, y, w_shape, attrs, bias = CONV_CASES[case]
    initializers = {"W": sparse(w_shape, 0.8, seed=5)}
    args = "x, W"
    if bias:
        initializers["B"] = np.random.default_rng(6).standard_normal(w_shape[0]).astype(np.float32)
        args += ", B"
    model = parse(f"{HEADER} g ({x}) => ({y}) {{ y = Conv {attrs} ({args}) }}", **initializers)
    result = rewrite_model(model, codec="csr")
    assert result.fired == {"conv": 1}
    node = result.model.graph.node[0]
    assert (node.op_type, node.domain) == ("LSCConv", lsc_ort.DOMAIN)
    assert list(node.attribute) == list(model.graph.node[0].attribute)
    assert list(node.input[2:]) == (["B"] if bias else [])
    assert_same_outputs(model, result.model, random_feeds(model))


def test_conv3d_does_not_fire() -> None:
    model = parse(
        f"{HEADER} g (float[1,2,5,5,5] x) => (float[1,4,3,3,3] y) {{ y = Conv(x, W) }}",
        W=sparse((4, 2, 3, 3, 3)),
    )
    result = rewrite_model(model)
    assert result.fired["conv"] == 0
    assert "rank 5" in result.declined[0][1]
    assert result.model == model


# --- where weights come from, and who else reads them ------------------------------------------


def test_constant_node_weight() -> None:
    model = parse(f"""{HEADER} g (float[2,32] a) => (float[2,24] y) {{
        w = Constant <value = float[32,24] {{{", ".join(map(str, sparse((32, 24)).ravel()))}}}> ()
        y = MatMul(a, w)
    }}""")
    result = rewrite_model(model)
    assert result.fired == {"matmul": 1}
    assert ops_of(result.model) == ["LSCMatMul"]  # the Constant node is gone
    assert [t.name for t in result.model.graph.initializer] == ["w_lsc_blob"]
    assert_same_outputs(model, result.model, random_feeds(model))


def test_shared_weight_is_encoded_once() -> None:
    model = parse(
        f"""{HEADER} g (float[2,32] a, float[5,32] b) => (float[2,24] y, float[5,24] z) {{
        y = MatMul(a, W)
        z = Gemm <alpha=2.0> (b, W)
    }}""",
        W=sparse((32, 24)),
    )
    result = rewrite_model(model)
    assert result.fired == {"matmul": 1, "gemm": 1}
    assert [t.name for t in result.model.graph.initializer] == ["W_lsc_blob"]
    assert [n.input[1] for n in result.model.graph.node] == ["W_lsc_blob", "W_lsc_blob"]
    assert [row.shared for row in result.layers] == [False, True]
    assert_same_outputs(model, result.model, random_feeds(model))


def test_weight_also_read_by_another_op_stays() -> None:
    model = parse(
        f"""{HEADER} g (float[2,32] a, float[24,2] b) => (float[2,24] y, float[32,2] z) {{
        y = MatMul(a, W)
        z = MatMul(W, b)
    }}""",
        W=sparse((32, 24)),
    )
    result = rewrite_model(model)
    assert result.fired == {"matmul": 1}
    assert sorted(t.name for t in result.model.graph.initializer) == ["W", "W_lsc_blob"]
    assert ops_of(result.model) == ["LSCMatMul", "MatMul"]
    assert_same_outputs(model, result.model, random_feeds(model))


def test_weight_that_is_a_graph_output_stays() -> None:
    model = parse(
        f"{HEADER} g (float[2,32] a) => (float[2,24] y, float[32,24] W) {{ y = MatMul(a, W) }}",
        W=sparse((32, 24)),
    )
    result = rewrite_model(model)
    assert result.fired == {"matmul": 1}
    assert "W" in constant_values(result.model)


def test_initializer_listed_as_graph_input_leaves_the_inputs() -> None:
    model = matmul_model()
    model.ir_version = 3
    model.graph.input.append(helper.make_tensor_value_info("W", onnx.TensorProto.FLOAT, [32, 24]))
    out = rewrite(model)
    assert [i.name for i in out.graph.input] == ["a"]


# --- codec choice and dense fallback -----------------------------------------------------------


def test_dense_weight_stays_dense() -> None:
    model = matmul_model(sparsity=0.0)
    result = rewrite_model(model)
    assert result.fired["matmul"] == 0
    assert result.model == model
    (row,) = result.layers
    assert (row.codec, row.encoded_bytes, row.sparsity) == (DENSE, row.dense_bytes, 0.0)
    assert "below min_sparsity" in row.note


@pytest.mark.parametrize("min_sparsity,fires", [(0.5, 1), (0.59, 1), (0.61, 0), (0.9, 0)])
def test_min_sparsity(min_sparsity: float, fires: int) -> None:
    model = matmul_model(sparsity=0.6)
    assert rewrite_model(model, min_sparsity=min_sparsity).fired["matmul"] == fires


def test_auto_keeps_dense_when_no_codec_beats_it() -> None:
    model = parse(
        f"{HEADER} g (float[2,4] a) => (float[2,3] y) {{ y = MatMul(a, W) }}", W=sparse((4, 3), 0.75)
    )
    result = rewrite_model(model)
    assert result.fired["matmul"] == 0
    assert "no codec beats dense storage" in result.layers[0].note
    forced = rewrite_model(model, codec="csr")
    assert forced.fired == {"matmul": 1}
    assert forced.layers[0].codec == "csr"
    assert_same_outputs(model, forced.model, random_feeds(model))


def test_auto_picks_the_smallest_codec() -> None:
    model = matmul_model((256, 128), a_shape="2,256", y_shape="2,128", sparsity=0.95)
    result = rewrite_model(model)
    sizes = {c: len(lsc_ort.encode(constant_values(model)["W"], c)) for c in lsc_ort.available_codecs()}
    assert result.layers[0].encoded_bytes == min(sizes.values())
    assert sizes[result.layers[0].codec] == min(sizes.values())


@pytest.mark.parametrize("codec", lsc_ort.available_codecs())
def test_forced_codec(codec: str) -> None:
    model = matmul_model((64, 48), a_shape="2,64", y_shape="2,48")
    result = rewrite_model(model, codec=codec)
    assert result.layers[0].codec == codec
    assert_same_outputs(model, result.model, random_feeds(model))


def test_ops_selects_the_rules() -> None:
    model = parse(
        f"""{HEADER} g (float[2,32] a, float[1,4,6,6] x) => (float[2,24] y, float[1,8,4,4] z) {{
        y = MatMul(a, W)
        z = Conv(x, K)
    }}""",
        W=sparse((32, 24)),
        K=sparse((8, 4, 3, 3)),
    )
    assert rewrite_model(model, ops=("Conv",)).fired == {"conv": 1}
    assert rewrite_model(model, ops=["MatMul"]).fired == {"matmul": 1}
    assert rewrite_model(model).fired == {"matmul": 1, "conv": 1}


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"codec": "nope"}, "unknown codec 'nope'"),
        ({"min_sparsity": 1.5}, "min_sparsity"),
        ({"ops": ("MatMul", "Gather")}, "no rewrite rule for op type(s) Gather"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rewrite(matmul_model(), **kwargs)


# --- the rest of the model ---------------------------------------------------------------------


def test_input_model_is_not_modified() -> None:
    model = matmul_model()
    before = model.SerializeToString()
    rewrite(model)
    assert model.SerializeToString() == before


def test_everything_else_is_untouched() -> None:
    model = parse(
        """<ir_version: 8, opset_import: ["" : 17, "com.example" : 1], producer_name: "me",
                     doc_string: "a model"> g (float[2,32] a) => (float[2,24] z) {
        y = MatMul(a, W)
        z = Sigmoid(y)
    }""",
        W=sparse((32, 24)),
    )
    model.metadata_props.add(key="k", value="v")
    model.graph.value_info.append(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 24]))
    model.graph.node[0].name = "mm"
    model.graph.node[0].doc_string = "the layer"
    out = rewrite(model)
    assert (out.producer_name, out.doc_string, out.ir_version) == ("me", "a model", 8)
    assert [(p.key, p.value) for p in out.metadata_props] == [("k", "v")]
    assert [(o.domain, o.version) for o in out.opset_import] == [
        ("", 17),
        ("com.example", 1),
        (lsc_ort.DOMAIN, 1),
    ]
    assert list(out.graph.value_info) == list(model.graph.value_info)
    assert (out.graph.node[0].name, out.graph.node[0].doc_string) == ("mm", "the layer")
    assert out.graph.node[1] == model.graph.node[1]
    onnx.checker.check_model(out)


def test_fresh_names_do_not_clash() -> None:
    model = parse(
        f"""{HEADER} g (float[2,32] a) => (float[2,24] y, float[2,3] z) {{
        y = MatMul(a, W)
        z = Identity(W_lsc_blob)
    }}""",
        W=sparse((32, 24)),
        W_lsc_blob=np.ones((2, 3), np.float32),
    )
    out = rewrite(model)
    assert out.graph.node[0].input[1] not in ("W", "W_lsc_blob")
    assert_same_outputs(model, out, random_feeds(model))


def test_error_names_the_node(tmp_path) -> None:
    model = matmul_model()
    model.graph.node[0].name = "layer7"
    onnx.save_model(model, tmp_path / "m.onnx", save_as_external_data=True, size_threshold=0)
    external = onnx.load_model(tmp_path / "m.onnx", load_external_data=False)
    with pytest.raises(RewriteError, match=r"node 'layer7' \(MatMul\): .*external"):
        rewrite(external)  # in memory, without base_dir: the weight cannot be read
    assert rewrite_model(external, base_dir=tmp_path).fired == {"matmul": 1}


def test_weight_read_inside_a_subgraph_stays() -> None:
    model = parse(
        f"""{HEADER} g (float[2,32] a, bool c) => (float[2,24] y, float[32,24] z) {{
        y = MatMul(a, W)
        z = If (c) <then_branch = t () => (float[32,24] w1) {{ w1 = Identity(W) }},
                    else_branch = e () => (float[32,24] w2) {{ w2 = Neg(W) }}>
    }}""",
        W=sparse((32, 24)),
    )
    result = rewrite_model(model)
    assert result.fired == {"matmul": 1}
    assert sorted(t.name for t in result.model.graph.initializer) == ["W", "W_lsc_blob"]
    feeds = {"a": random_feeds(model)["a"], "c": np.array(False)}
    assert_same_outputs(model, result.model, feeds)


def test_public_exports() -> None:
    import lsc_ort.pruning
    import lsc_ort.reference
    import lsc_ort.rewriter

    assert lsc_ort.rewrite is lsc_ort.rewriter.rewrite
    assert lsc_ort.decompress is lsc_ort.rewriter.decompress
    assert lsc_ort.prune is lsc_ort.pruning.prune
    assert lsc_ort.reference_evaluator is lsc_ort.reference.reference_evaluator
    assert {"rewrite", "decompress", "prune", "reference_evaluator"} <= set(lsc_ort.__all__)


def test_every_node_the_pass_makes_is_named() -> None:
    """Unnamed nodes are named after their output and op type, so that native errors name them."""
    model = parse(
        f"""{HEADER} g (float[32,2] a, float[2,1,8,8] x, float[2,24] c) => (float[2,8] u, float[2,4,8,8] z) {{
        t = Transpose <perm = [1, 0]> (a)
        y = Gemm <transA = 1, beta = 0.5> (a, W2, c)
        u = MatMul(y, W3)
        z = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x, K)
    }}""",
        W2=sparse((32, 24), seed=3),
        W3=sparse((24, 8), seed=5),
        K=sparse((4, 1, 3, 3), 0.75, seed=4),
    )
    result = rewrite_model(model, codec="csr")
    assert sum(result.fired.values()) == 3
    names = [n.name for n in result.model.graph.node]
    assert names[0] == ""  # a node the pass leaves keeps its (missing) name
    assert all(names[1:]) and len(set(names)) == len(names), names
    lsc = sorted(n.name for n in result.model.graph.node if n.domain == lsc_ort.DOMAIN)
    assert lsc == ["u/MatMul", "y/Gemm", "z/Conv"]
    assert {"y/Gemm/transA", "y/Gemm/beta", "y/Gemm/C"} <= set(names)
    assert sorted(row.node for row in result.layers) == lsc
    assert_same_outputs(model, result.model, random_feeds(model))
    foreign = onnx.ModelProto()
    foreign.CopyFrom(result.model)
    for node in foreign.graph.node:
        node.name = ""
    restored = lsc_ort.decompress(foreign)
    assert all(n.name for n in restored.graph.node if n.op_type in ("MatMul", "Gemm", "Conv"))


def test_native_errors_name_nodes_that_had_no_name() -> None:
    from tests.rewrite_fixtures import NATIVE, run_ort

    if not NATIVE:
        pytest.skip("the native library is not built")
    model = matmul_model(a_shape="N,K", y_shape="N,24")
    assert model.graph.node[0].name == ""
    out = rewrite(model)
    with pytest.raises(Exception, match=r"\[LSCMatMul\] node 'y/MatMul': "):
        run_ort(out, {"a": np.ones((2, 31), np.float32)})


# One attention block as exporters write it: Q, K, V projections split into heads by a Reshape to
# a computed target (dims 0 and 1 from Shape) or a constant one, keys transposed for Q @ K^T, and
# the heads joined back to tokens before the output projection.
def _split(name: str, source: str, perm: str, computed: bool) -> str:
    target = (f"{name}_shape = Shape({source}) {name}_b = Gather({name}_shape, i0) "
              f"{name}_s = Gather({name}_shape, i1) {name}_ub = Unsqueeze({name}_b, ax0) "
              f"{name}_us = Unsqueeze({name}_s, ax0) {name}_t = Concat<axis=0>({name}_ub, {name}_us, hd) ")
    if not computed:
        return f"{name}_r = Reshape({source}, zzhd) {name} = Transpose<perm={perm}>({name}_r) "
    return target + f"{name}_r = Reshape({source}, {name}_t) {name} = Transpose<perm={perm}>({name}_r) "


def attention_model(computed: bool = True, key_perm: str = "[0,2,3,1]", join: str = "computed") -> onnx.ModelProto:
    join_target = {
        "computed": "cs = Shape(ct) cb = Gather(cs, i0) cl = Gather(cs, i1) cub = Unsqueeze(cb, ax0) "
                    "cus = Unsqueeze(cl, ax0) jt = Concat<axis=0>(cub, cus, k32) ",
        "constant": "",
        "swapped": "cs = Shape(ct) cb = Gather(cs, i1) cl = Gather(cs, i0) cub = Unsqueeze(cb, ax0) "
                   "cus = Unsqueeze(cl, ax0) jt = Concat<axis=0>(cub, cus, k32) ",
    }[join]
    scores = "Transpose<perm=[0,1,3,2]>(k) " if key_perm == "[0,2,1,3]" else ""
    kt = "ktt" if scores else "k"
    body = (
        "q0 = MatMul(x, Wq) q1 = Add(q0, bq) k0 = MatMul(x, Wk) k1 = Add(k0, bk) v0 = MatMul(x, Wv) v1 = Add(v0, bv) "
        + _split("q", "q1", "[0,2,1,3]", computed) + _split("k", "k1", key_perm, computed)
        + _split("v", "v1", "[0,2,1,3]", computed)
        + (f"ktt = {scores}" if scores else "")
        + f"sc = MatMul(q, {kt}) sd = Div(sc, dsq) p = Softmax<axis=-1>(sd) c = MatMul(p, v) "
        "ct = Transpose<perm=[0,2,1,3]>(c) " + join_target
        + f"cj = Reshape(ct, {'zzk' if join == 'constant' else 'jt'}) o0 = MatMul(cj, Wo) y = Add(o0, bo)"
    )
    return parse(
        f"{HEADER} g (float[2,5,32] x) => (float[2,5,32] y) {{ {body} }}",
        Wq=sparse((32, 32), 0.8, 1), Wk=sparse((32, 32), 0.8, 2), Wv=sparse((32, 32), 0.8, 3),
        Wo=sparse((32, 32), 0.8, 4), bq=np.linspace(-1, 1, 32).astype(np.float32),
        bk=np.linspace(1, -1, 32).astype(np.float32), bv=np.full(32, 0.5, np.float32),
        bo=np.zeros(32, np.float32), i0=np.array(0), i1=np.array(1), ax0=np.array([0]),
        hd=np.array([4, 8]), zzhd=np.array([0, 0, 4, 8]), k32=np.array([32]), zzk=np.array([0, 0, -1]),
        dsq=np.array(np.sqrt(8), np.float32),
    )


def _layouts(model: onnx.ModelProto) -> list[dict]:
    keys = ("heads", "input_layout", "output_layout")
    return [{a.name: helper.get_attribute_value(a) for a in n.attribute if a.name in keys}
            for n in model.graph.node if n.op_type == "LSCMatMul"]


@pytest.mark.parametrize("computed", [True, False])
def test_attention_heads_are_absorbed(computed: bool) -> None:
    """Every Reshape + Transpose pair of the attention block goes into the projections' layouts,
    and the Shape computations serving only them go too; the attention core between them becomes
    one LSCAttention."""
    model = attention_model(computed, join="computed" if computed else "constant")
    rewritten = rewrite_model(model).model
    assert sorted(ops_of(rewritten)) == ["LSCAttention", "LSCMatMul", "LSCMatMul", "LSCMatMul", "LSCMatMul"]
    assert _layouts(rewritten) == [
        {"heads": 4, "output_layout": b"BHSD"}, {"heads": 4, "output_layout": b"BHDS"},
        {"heads": 4, "output_layout": b"BHSD"}, {"heads": 4, "input_layout": b"BHSD"},
    ]
    shape_constants = {"i0", "i1", "ax0", "hd", "k32"} if computed else {"zzhd", "zzk"}
    assert not shape_constants & set(constant_values(rewritten))
    assert_same_outputs(model, rewritten, random_feeds(model))


def test_attention_patterns_that_are_not_proven_stay() -> None:
    """Keys in [0, 2, 1, 3] (then transposed by a separate Transpose) still fuse; a join whose
    target swaps the batch and sequence dims does not. (Without folding: onnxruntime's basic
    level would merge the two key Transposes and turn the static 3-D MatMul + Add into a Gemm.)"""
    model = attention_model(key_perm="[0,2,1,3]", join="swapped")
    rewritten = rewrite_model(model, fold=False).model
    layouts = _layouts(rewritten)
    assert layouts[1] == {"heads": 4, "output_layout": b"BHSD"}
    assert layouts[3] == {}
    assert ops_of(rewritten).count("Reshape") == 1 and ops_of(rewritten).count("Transpose") == 2
    assert_same_outputs(model, rewritten, random_feeds(model))


def test_split_whose_shape_serves_another_node_stays() -> None:
    """The Reshape's Shape also feeds a graph output: the split stays as it is."""
    model = parse(
        f"{HEADER} g (float[2,5,32] x) => (float[2,4,5,8] y, int64[3] s) "
        "{ m = MatMul(x, W) s = Shape(m) b = Gather(s, i0) l = Gather(s, i1) ub = Unsqueeze(b, ax0) "
        "ul = Unsqueeze(l, ax0) t = Concat<axis=0>(ub, ul, hd) r = Reshape(m, t) y = Transpose<perm=[0,2,1,3]>(r) }",
        W=sparse((32, 32), 0.8), i0=np.array(0), i1=np.array(1), ax0=np.array([0]), hd=np.array([4, 8]),
    )
    rewritten = rewrite_model(model).model
    assert _layouts(rewritten) == [{}] and "Transpose" in ops_of(rewritten)
    assert_same_outputs(model, rewritten, random_feeds(model))


def _attr(model: onnx.ModelProto, key: str) -> list:
    return [next((helper.get_attribute_value(a) for a in n.attribute if a.name == key), None)
            for n in model.graph.node if n.op_type == "LSCMatMul"]


def test_feed_forward_pair_hands_over_row_tiles() -> None:
    """MatMul + bias + Gelu read only by the next MatMul: the tensor between them goes in tiles."""
    model = parse(
        f"{HEADER} g (float[2,70,32] x) => (float[2,70,32] y) "
        "{ h0 = MatMul(x, W1) h1 = Add(h0, b1) h = Relu(h1) y0 = MatMul(h, W2) y = Add(y0, b2) }",
        W1=sparse((32, 96), 0.8, 1), W2=sparse((96, 32), 0.8, 2), b1=np.linspace(-1, 1, 96).astype(np.float32),
        b2=np.zeros(32, np.float32),
    )
    rewritten = rewrite_model(model).model
    assert ops_of(rewritten) == ["LSCMatMul", "LSCMatMul"]
    assert _attr(rewritten, "output_layout") == [b"TILES", None]
    assert _attr(rewritten, "input_layout") == [None, b"TILES"]
    assert_same_outputs(model, rewritten, random_feeds(model))


@pytest.mark.parametrize("other", [
    "z = Relu(h)",            # another reader
    "z = Identity(h)",        # another reader, and a graph output behind it
    "q = MatMul(x2, W3) z = Add(q, h)",  # read as a residual
])
def test_row_tiles_only_for_lsc_readers_of_a(other: str) -> None:
    model = parse(
        f"{HEADER} g (float[3,32] x, float[3,96] x2) => (float[3,32] y, float[3,96] z) "
        f"{{ h0 = MatMul(x, W1) h = Add(h0, b1) y = MatMul(h, W2) {other} }}",
        W1=sparse((32, 96), 0.8, 1), W2=sparse((96, 32), 0.8, 2), W3=sparse((96, 96), 0.8, 3),
        b1=np.linspace(-1, 1, 96).astype(np.float32),
    )
    rewritten = rewrite_model(model).model
    assert b"TILES" not in _attr(rewritten, "output_layout") + _attr(rewritten, "input_layout")
    assert_same_outputs(model, rewritten, random_feeds(model))


def test_row_tiles_to_several_readers() -> None:
    model = parse(
        f"{HEADER} g (float[130,32] x) => (float[130,16] y, float[130,8] z) "
        "{ h = MatMul(x, W1) y = MatMul(h, W2) z = MatMul(h, W3) }",
        W1=sparse((32, 48), 0.8, 1), W2=sparse((48, 16), 0.8, 2), W3=sparse((48, 8), 0.8, 3),
    )
    rewritten = rewrite_model(model).model
    assert _attr(rewritten, "output_layout") == [b"TILES", None, None]
    assert _attr(rewritten, "input_layout") == [None, b"TILES", b"TILES"]
    assert_same_outputs(model, rewritten, random_feeds(model))


@pytest.mark.parametrize("c", ["B1", "Cfull"])
def test_gemm_relu_is_absorbed_unless_c_is_added_after(c: str) -> None:
    """Gemm + Relu: the Relu becomes the op's activation when C is its bias; a run-time-shaped C
    is added after the product, so the Relu stays after that Add."""
    model = parse(
        f"{HEADER} g (float[4,64] a) => (float[4,48] y) {{ h = Gemm<transB=1>(a, W1, {c}) y = Relu(h) }}",
        W1=sparse((48, 64), 0.9, 1), B1=np.ones(48, np.float32),
        Cfull=np.linspace(-1, 1, 4 * 48).astype(np.float32).reshape(4, 48),
    )
    rewritten = rewrite_model(model, fold=False).model
    if c == "B1":
        assert ops_of(rewritten) == ["LSCMatMul"] and _attr(rewritten, "activation") == [b"Relu"]
    else:
        assert ops_of(rewritten) == ["LSCMatMul", "Add", "Relu"]
    assert_same_outputs(model, rewritten, random_feeds(model))
