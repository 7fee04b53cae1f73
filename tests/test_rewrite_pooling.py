"""The masked mean pooling rewrite (lsc_ort.rewriter.pooling): the sums over tokens as one MatMul
with the mask, when the Expand target is proven to be the tokens' shape, and not otherwise."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from lsc_ort.rewriter import rewrite_model
from tests.rewrite_fixtures import assert_same_outputs, ops_of, parse, sparse

SHAPES = "float[2,5,8] a, int64[2,5] mask"

# torch's expand(x.size()): Shape, Gather and Unsqueeze per dim, Concat, Reshape, and a Where
# that replaces -1 entries.
TORCH_TARGET = (
    "s0 = Shape(x) d0 = Gather<axis=0>(s0, i0) s1 = Shape(x) d1 = Gather<axis=0>(s1, i1) "
    "s2 = Shape(x) d2 = Gather<axis=0>(s2, i2) u0 = Unsqueeze(d0, ax0) u1 = Unsqueeze(d1, ax0) "
    "u2 = Unsqueeze(d2, ax0) cat = Concat<axis=0>(u0, u1, u2) r = Reshape(cat, minus1) sr = Shape(r) "
    "ones = ConstantOfShape<value=int64[1]{1}>(sr) neg = Mul(ones, minus1s) eq = Equal(r, neg) "
    "target = Where(eq, ones, r) "
)
POOL = ("um = Unsqueeze(mask, axm) e = Expand(um, target) m = Cast<to=1>(e) xm = Mul(x, m) "
        "total = ReduceSum<keepdims=0>(xm, ax1) count = ReduceSum<keepdims=0>(m, ax1) "
        "c = Clip(count, eps) y = Div(total, c)")
CONSTANTS = {"i0": np.array(0, np.int64), "i1": np.array(1, np.int64), "i2": np.array(2, np.int64),
             "ax0": np.array([0], np.int64), "axm": np.array([-1], np.int64), "ax1": np.array([1], np.int64),
             "minus1": np.array([-1], np.int64), "minus1s": np.array(-1, np.int64),
             "eps": np.array(1e-9, np.float32)}


def pooling_model(target: str = TORCH_TARGET, pool: str = POOL, out: str = "float[2,8] y",
                  **extra: np.ndarray) -> onnx.ModelProto:
    text = (f'<ir_version: 8, opset_import: ["" : 17]> g ({SHAPES}) => ({out}) '
            f"{{ x = MatMul(a, W) {target}{pool} }}")
    return parse(text, W=sparse((8, 8)), **{**CONSTANTS, **extra})


def feeds() -> dict[str, np.ndarray]:
    mask = np.ones((2, 5), np.int64)
    mask[1, 3:] = 0
    return {"a": np.random.default_rng(2).standard_normal((2, 5, 8)).astype(np.float32), "mask": mask}


@pytest.mark.parametrize("target", [TORCH_TARGET, "target = Shape(x) "])
def test_masked_mean_pooling_becomes_one_matmul(target: str) -> None:
    model = pooling_model(target)
    result = rewrite_model(model)
    assert result.pooling == 1
    ops = ops_of(result.model)
    assert "ReduceSum" in ops and ops.count("ReduceSum") == 1 and "MatMul" in ops and "Where" not in ops
    assert ops.count("Shape") == 1  # the shape chain went; one Shape expands the count
    assert_same_outputs(model, result.model, feeds(), 1e-5)


@pytest.mark.parametrize("change, why", [
    (lambda t, p: (t.replace("Where(eq, ones, r)", "Identity(shape_in)"), p), "a target not proven"),
    (lambda t, p: (t.replace("value=int64[1]{1}", "value=int64[1]{-3}"), p), "a Where that may change r"),
    (lambda t, p: (t, p.replace("ax1)", "ax2)")), "sums over another axis"),
    (lambda t, p: (t, p.replace("count = ReduceSum<keepdims=0>(m, ax1)", "count = ReduceSum<keepdims=1>(m, ax1)")),
     "keepdims"),
])
def test_other_patterns_are_left(change, why: str) -> None:
    target, pool = change(TORCH_TARGET, POOL)
    extra = {"shape_in": np.array([2, 5, 8], np.int64), "ax2": np.array([2], np.int64)}
    out = "float[2,8] y" if "ax2" not in pool and "keepdims=1" not in pool else "float[2,5] y"
    if "keepdims=1" in pool:
        out = "float[2,1,8] y"
    model = pooling_model(target, pool, out=out, **extra)
    result = rewrite_model(model)
    assert result.pooling == 0, why
    assert_same_outputs(model, result.model, feeds(), 1e-5)


def test_a_mask_read_elsewhere_stays_and_the_option_turns_it_off() -> None:
    model = pooling_model(out="float[2,8] y, float[2,5,8] m")
    result = rewrite_model(model)
    assert result.pooling == 0  # the Cast mask is a graph output
    model = pooling_model()
    assert rewrite_model(model, fuse_pooling=False).pooling == 0
