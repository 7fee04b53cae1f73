"""Folding before encoding (lsc_ort.rewriter.fold) and what the rules absorb after a Conv / MatMul:
which nodes go, that zeros stay zeros bit for bit, and that the outputs do not change."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import lsc_ort
from lsc_ort.format import bit_patterns
from lsc_ort.rewriter import decompress, rewrite_model
from lsc_ort.rewriter.fold import fold_model
from tests.rewrite_fixtures import assert_close, parse, random_feeds, run_ort, sparse

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'


def counts(model: onnx.ModelProto) -> Counter[str]:
    return Counter(node.op_type for node in model.graph.node)


def conv_bn_model(negative_zeros: bool = False) -> onnx.ModelProto:
    w = sparse((8, 4, 3, 3), 0.9, seed=1)
    if negative_zeros:
        w[np.where(w == 0)[0][:5], 0, 0, 0] = -0.0
    rng = np.random.default_rng(2)
    return parse(
        f"{HEADER} g (float[1,4,9,9] x) => (float[1,8,9,9] y) {{"
        " c = Conv <pads = [1, 1, 1, 1]> (x, W, B)"
        " y = BatchNormalization (c, s, b, m, v) }",
        W=w, B=rng.standard_normal(8).astype(np.float32),
        s=rng.uniform(-2, 2, 8).astype(np.float32), b=rng.standard_normal(8).astype(np.float32),
        m=rng.standard_normal(8).astype(np.float32), v=rng.uniform(0.5, 2, 8).astype(np.float32),
    )


def conv_weights(model: onnx.ModelProto) -> list[np.ndarray]:
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [inits[n.input[1]] for n in model.graph.node if n.op_type == "Conv"]


def test_batchnorm_folds_into_conv_and_zeros_keep_their_bits() -> None:
    model = conv_bn_model(negative_zeros=True)
    result = fold_model(model)
    assert counts(result.model) == {"Conv": 1}
    assert result.removed == {"BatchNormalization": 1}
    assert "1 BatchNormalization" in result.summary()
    (before,), (after,) = conv_weights(model), conv_weights(result.model)
    zero = bit_patterns(before) == 0
    negative_zero = bit_patterns(before) == 0x80000000
    assert np.array_equal(bit_patterns(after) == 0, zero)  # the same zeros, +0.0 stays +0.0
    assert np.array_equal(bit_patterns(after)[negative_zero], bit_patterns(before)[negative_zero])
    feeds = random_feeds(model)
    assert_close(run_ort(result.model, feeds)[0], run_ort(model, feeds)[0].astype(np.float64))
    assert [o.domain for o in result.model.opset_import] == [""]  # no domains onnxruntime adds


def test_tensorflow_layout_transposes_cancel_and_sub_mul_add_fold() -> None:
    model = parse(
        f"{HEADER} g (float[1,9,9,4] x) => (float[1,9,9,8] y) {{"
        " t = Transpose <perm = [0, 3, 1, 2]> (x)"
        " c = Conv <pads = [1, 1, 1, 1]> (t, W1)"
        " h = Transpose <perm = [0, 2, 3, 1]> (c)"
        " s1 = Sub (h, mean) m1 = Mul (s1, scale) a1 = Add (m1, beta) r1 = Relu (a1)"
        " t2 = Transpose <perm = [0, 3, 1, 2]> (r1)"
        " c2 = Conv <pads = [1, 1, 1, 1]> (t2, W2)"
        " y = Transpose <perm = [0, 2, 3, 1]> (c2) }",
        W1=sparse((8, 4, 3, 3), 0.9, seed=3), W2=sparse((8, 8, 3, 3), 0.9, seed=4),
        mean=np.full(8, 0.5, np.float32), scale=np.linspace(0.5, 2, 8, dtype=np.float32),
        beta=np.linspace(-1, 1, 8, dtype=np.float32),
    )
    result = fold_model(model)
    left = counts(result.model)
    assert left["Sub"] == left["Mul"] == left["Add"] == 0 and left["Conv"] == 2
    assert left["Transpose"] <= 2 and result.removed["Transpose"] >= 2
    for before, after in zip(conv_weights(model), conv_weights(result.model), strict=True):
        assert np.array_equal(before == 0, after == 0)
    feeds = random_feeds(model)
    assert_close(run_ort(result.model, feeds)[0], run_ort(model, feeds)[0].astype(np.float64))


def test_gemm_mul_and_div_by_channel_fold() -> None:
    model = parse(
        f"{HEADER} g (float[3,16] a) => (float[3,8] y) {{"
        " g1 = Gemm <transB = 1> (a, W, C) m = Mul (g1, s) y = Div (m, d) }",
        W=sparse((8, 16), 0.8), C=np.ones(8, np.float32), s=np.linspace(1, 2, 8, dtype=np.float32),
        d=np.full((1, 8), 4.0, np.float32),
    )
    result = fold_model(model)
    assert counts(result.model) == {"Gemm": 1}
    feeds = random_feeds(model)
    assert_close(run_ort(result.model, feeds)[0], run_ort(model, feeds)[0].astype(np.float64))


@pytest.mark.parametrize(
    "body,why",
    [
        ("c = Conv (x, W) y = Mul (c, c)", "both operands computed"),
        ("c = Conv (x, W) y = Sub (s, c)", "c - x negates the weight"),
        ("c = Conv (x, W) y = Mul (c, full)", "not per output channel"),
    ],
)
def test_what_must_not_fold(body: str, why: str) -> None:
    model = parse(
        f"{HEADER} g (float[1,4,5,5] x) => (float[1,6,5,5] y) {{ {body} }}",
        W=sparse((6, 4, 1, 1), 0.5), s=np.ones((6, 1, 1), np.float32),
        full=np.ones((1, 6, 5, 5), np.float32),
    )
    result = fold_model(model)
    assert counts(result.model) == counts(model), why
    assert result.summary() == "nothing to fold"


def test_conv_output_read_twice_is_not_folded() -> None:
    model = parse(
        f"{HEADER} g (float[1,4,5,5] x) => (float[1,6,5,5] y, float[1,6,5,5] c) {{"
        " c = Conv (x, W) y = Mul (c, s) }",
        W=sparse((6, 4, 1, 1), 0.5), s=np.ones((6, 1, 1), np.float32),
    )
    assert counts(fold_model(model).model) == {"Conv": 1, "Mul": 1}


def test_rewrite_folds_by_default_and_not_when_told() -> None:
    model = conv_bn_model()
    folded = rewrite_model(model)
    assert counts(folded.model) == {"LSCConv": 1} and folded.folded is not None
    assert folded.folded.removed == {"BatchNormalization": 1}
    unfolded = rewrite_model(model, fold=False)
    assert counts(unfolded.model) == {"LSCConv": 1, "BatchNormalization": 1} and unfolded.folded is None
    feeds = random_feeds(model)
    assert_close(run_ort(folded.model, feeds)[0], run_ort(model, feeds)[0].astype(np.float64))


# --- what the rules absorb ----------------------------------------------------------------------


def residual_model() -> onnx.ModelProto:
    """Two convolutions whose outputs meet in a Sum and a Relu (a ResNet downsampling block)."""
    return parse(
        f"{HEADER} g (float[1,4,8,8] x) => (float[1,8,8,8] y) {{"
        " a = Conv <pads = [1, 1, 1, 1]> (x, W1, B1) ar = Relu (a)"
        " b = Conv (ar, W2) s = Conv (x, W3)"
        " t = Sum (b, s) y = Relu (t) }",
        W1=sparse((6, 4, 3, 3), 0.8, seed=5), B1=np.linspace(-1, 1, 6, dtype=np.float32),
        W2=sparse((8, 6, 1, 1), 0.8, seed=6), W3=sparse((8, 4, 1, 1), 0.8, seed=7),
    )


def test_conv_absorbs_relu_and_one_residual_sum() -> None:
    model = residual_model()
    result = rewrite_model(model, fold=False, codec="lsc")
    assert counts(result.model) == {"LSCConv": 3}
    convs = result.model.graph.node
    activations = [helper.get_attribute_value(a).decode() for n in convs for a in n.attribute
                   if a.name == "activation"]
    assert activations == ["Relu", "Relu"]
    with_residual = [n for n in convs if len(n.input) == 4]
    assert len(with_residual) == 1 and with_residual[0].output[0] == "y"
    onnx.checker.check_model(result.model)  # topologically sorted: the residual exists first
    feeds = random_feeds(model)
    assert_close(run_ort(result.model, feeds)[0], run_ort(model, feeds)[0].astype(np.float64))
    restored = decompress(result.model)
    assert counts(restored) == {"Conv": 3, "Relu": 2, "Add": 1}
    assert_close(run_ort(restored, feeds)[0], run_ort(model, feeds)[0].astype(np.float64))


def test_add_of_a_broadcast_tensor_is_not_absorbed() -> None:
    model = parse(
        f"{HEADER} g (float[1,4,5,5] x, float[1,6,1,1] z) => (float[1,6,5,5] y) {{"
        " c = Conv (x, W) y = Add (c, z) }",
        W=sparse((6, 4, 1, 1), 0.8),
    )
    result = rewrite_model(model, fold=False, codec="lsc")
    assert counts(result.model) == {"LSCConv": 1, "Add": 1}


def test_matmul_absorbs_its_bias_add() -> None:
    model = parse(
        f"{HEADER} g (float[2,3,16] a) => (float[2,3,8] y) {{ m = MatMul (a, W) y = Add (m, b) }}",
        W=sparse((16, 8), 0.8), b=np.linspace(-1, 1, 8, dtype=np.float32),
    )
    result = rewrite_model(model)
    assert counts(result.model) == {"LSCMatMul": 1}
    assert list(result.model.graph.node[0].input)[2] == "b"
    feeds = random_feeds(model)
    assert_close(run_ort(result.model, feeds)[0], run_ort(model, feeds)[0].astype(np.float64))
    assert counts(decompress(result.model)) == {"MatMul": 1, "Add": 1}


def test_reference_op_computes_residual_and_relu() -> None:
    model = residual_model()
    result = rewrite_model(model, fold=False, codec="lsc")
    from tests.rewrite_fixtures import run_original, run_reference

    feeds = random_feeds(model)
    assert_close(run_reference(result.model, feeds)[0], run_original(model, feeds)[0].astype(np.float64))


def test_cli_says_what_it_folded(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from lsc_ort.cli import main

    src = tmp_path / "m.onnx"
    onnx.save(conv_bn_model(), str(src))
    assert main(["compress", str(src), "-o", str(tmp_path / "a.onnx")]) == 0
    assert "before encoding: folded 1 BatchNormalization into weights" in capsys.readouterr().out
    assert main(["compress", str(src), "-o", str(tmp_path / "b.onnx"), "--no-fold"]) == 0
    assert "before encoding" not in capsys.readouterr().out
    assert counts(onnx.load(str(tmp_path / "b.onnx")))["BatchNormalization"] == 1
    assert lsc_ort.DOMAIN
