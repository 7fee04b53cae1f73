"""The attention fusion (lsc_ort.rewriter.attention): which chains become LSCAttention, which
must not, and that the rewritten, decompressed and TVM-free reference models compute the same."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from lsc_ort.rewriter import rewrite_model
from lsc_ort.rewriter.decompress import decompress
from tests.rewrite_fixtures import assert_same_outputs, ops_of, parse, random_feeds, sparse

SHAPES = "float[2,4,6,8] x, float[2,4,8,10] kt, float[2,4,10,8] v, float[2,1,1,10] mask"


def attention(body: str, opset: int = 17, shapes: str = SHAPES, out: str = "float[2,4,6,8] y",
              **extra: np.ndarray) -> onnx.ModelProto:
    """``q = MatMul(x, Wq)`` (a sparse weight, so that the model has a layer to encode), then
    ``body``, which computes ``y`` from ``q``, ``kt``, ``v`` and ``mask``."""
    text = (f'<ir_version: 8, opset_import: ["" : {opset}]> g ({shapes}) => ({out}) '
            f"{{ q = MatMul(x, Wq) {body} }}")
    extra.setdefault("Wq", sparse((8, 8)))
    return parse(text, c=np.array(np.sqrt(8), np.float32), **extra)


BERT = "s = MatMul(q, kt) d = Div(s, c) a = Add(d, mask) p = Softmax<axis=-1>(a) y = MatMul(p, v)"


def test_bert_attention_is_fused_and_computes_the_same() -> None:
    model = attention(BERT)
    result = rewrite_model(model)
    assert result.attention == 1 and result.declined == []  # its MatMuls are no nodes left as they were
    assert rewrite_model(model, fuse_attention=False).declined != []
    assert ops_of(result.model) == ["LSCMatMul", "LSCAttention"]
    node = result.model.graph.node[1]
    assert list(node.input) == ["q", "kt", "v", "mask"] and list(node.output) == ["y"]
    assert onnx.helper.get_attribute_value(node.attribute[0]) == pytest.approx(1 / np.sqrt(8), rel=1e-7)
    assert all(t.name != "c" for t in result.model.graph.initializer)  # the scale constant went with it
    feeds = random_feeds(model)
    feeds["mask"][1, ..., 7:] = -1e4
    assert_same_outputs(model, result.model, feeds, 1e-5)
    restored = decompress(result.model)
    assert ops_of(restored) == ["MatMul", "MatMul", "Mul", "Add", "Softmax", "MatMul"]
    assert_same_outputs(model, restored, feeds, 1e-5)


@pytest.mark.parametrize("body", [
    "s = MatMul(q, kt) d = Mul(c, s) p = Softmax<axis=3>(d) y = MatMul(p, v)",
    "s = MatMul(q, kt) a = Add(mask, s) p = Softmax(a) y = MatMul(p, v)",
    "s = MatMul(q, kt) p = Softmax(s) y = MatMul(p, v)",
])
def test_variants_are_fused(body: str) -> None:
    model = attention(body)
    result = rewrite_model(model)
    assert result.attention == 1 and "Softmax" not in ops_of(result.model)
    assert_same_outputs(model, result.model, random_feeds(model), 1e-5)


def test_rank_three_heads_are_fused() -> None:
    shapes = "float[4,6,8] x, float[4,8,10] kt, float[4,10,8] v, float[10] mask"
    model = attention(BERT, shapes=shapes, out="float[4,6,8] y")
    result = rewrite_model(model)
    assert result.attention == 1
    assert_same_outputs(model, result.model, random_feeds(model), 1e-5)


@pytest.mark.parametrize("body, why", [
    ("s = MatMul(q, kt) p = Softmax<axis=2>(s) y = MatMul(p, v)", "softmax over the queries"),
    ("s = MatMul(q, kt) p = Softmax<axis=-1>(s) y = MatMul(v2, p)", "the probabilities on the right"),
    ("s = MatMul(q, kt) d = Div(s, q2) p = Softmax(d) y = MatMul(p, v)", "a scale computed at run time"),
    ("s = MatMul(q, kt) d = Div(c, s) p = Softmax(d) y = MatMul(p, v)", "c / scores"),
    ("s = MatMul(q, kt) d = Div(s, zero) p = Softmax(d) y = MatMul(p, v)", "a division by zero"),
    ("s = MatMul(q, kt) p = Softmax(s) t = Identity(p) y = MatMul(t, v)", "a node in between"),
])
def test_other_chains_are_left(body: str, why: str) -> None:
    extra = {"zero": np.array(0, np.float32)}
    shapes = SHAPES + ", float[2,4,10,6] v2, float[2,4,6,10] q2"
    model = attention(body, shapes=shapes, out="float[2,4,6,8] y" if "v2" not in body else "float[2,4,10,10] y",
                      **extra)
    result = rewrite_model(model)
    assert result.attention == 0, why
    assert "Softmax" in ops_of(result.model)


def test_a_tensor_read_elsewhere_stops_the_fusion() -> None:
    model = attention("s = MatMul(q, kt) p = Softmax(s) y = MatMul(p, v) z = Identity(p)",
                      out="float[2,4,6,8] y, float[2,4,6,10] z")
    assert rewrite_model(model).attention == 0
    model = attention("s = MatMul(q, kt) p = Softmax(s) y = MatMul(p, v)", out="float[2,4,6,8] y, float[2,4,6,10] s")
    assert rewrite_model(model).attention == 0


def test_a_product_a_weight_rule_took_is_not_fused() -> None:
    """Values that are a sparse constant: MatMul(p, V) becomes an LSCMatMul, the chain stays."""
    shapes = "float[2,4,6,8] x, float[2,4,8,10] kt, float[2,1,1,10] mask"
    model = attention(BERT.replace("MatMul(p, v)", "MatMul(p, vc)"), shapes=shapes, vc=sparse((10, 8), seed=3))
    result = rewrite_model(model)
    assert result.attention == 0 and ops_of(result.model).count("LSCMatMul") == 2
    assert_same_outputs(model, result.model, random_feeds(model), 1e-5)


def test_a_bias_that_widens_the_scores_is_left() -> None:
    """Scores [2, 4, 1, 10] plus a mask [2, 1, 3, 10] make [2, 4, 3, 10]: not LSCAttention's case."""
    shapes = "float[2,4,1,8] x, float[2,4,8,10] kt, float[2,4,10,8] v, float[2,1,3,10] mask"
    model = attention(BERT, shapes=shapes, out="float[2,4,3,8] y")
    assert rewrite_model(model).attention == 0


def test_opset_11_softmax_needs_the_last_axis() -> None:
    """Before opset 13, Softmax's default axis 1 flattens heads and keys together."""
    assert rewrite_model(attention("s = MatMul(q, kt) p = Softmax(s) y = MatMul(p, v)", opset=11)).attention == 0
    model = attention("s = MatMul(q, kt) p = Softmax<axis=3>(s) y = MatMul(p, v)", opset=11)
    result = rewrite_model(model)
    assert result.attention == 1
    assert_same_outputs(model, result.model, random_feeds(model), 1e-5)


def test_float16_is_left() -> None:
    shapes = "float16[2,4,6,256] x, float16[2,4,8,10] kt, float16[2,4,10,8] v"
    text = (f'<ir_version: 8, opset_import: ["" : 17]> g ({shapes}) => (float16[2,4,6,8] y) '
            "{ q = MatMul(x, Wq) s = MatMul(q, kt) p = Softmax(s) y = MatMul(p, v) }")
    model = parse(text, Wq=sparse((256, 8), dtype=np.float16))
    result = rewrite_model(model)
    assert result.fired and result.attention == 0


def test_opt_out_and_nothing_to_encode() -> None:
    model = attention(BERT)
    assert rewrite_model(model, fuse_attention=False).attention == 0
    assert "LSCAttention" not in ops_of(rewrite_model(model, fuse_attention=False).model)
    dense = attention(BERT, Wq=np.ones((8, 8), np.float32))  # nothing sparse: the model stays as it is
    result = rewrite_model(dense)
    assert result.attention == 0 and ops_of(result.model) == ops_of(dense)
