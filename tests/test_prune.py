"""One-shot magnitude pruning."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lsc_ort.pruning import magnitude_prune, prune, prune_model
from tests.rewrite_fixtures import constant_values, parse, sparse

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    weight=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=4, max_side=9),
        elements=st.floats(-10, 10, width=32, allow_subnormal=False),
    ),
    sparsity=st.floats(0.0, 1.0),
)
def test_magnitude_prune_zeroes_exactly_the_smallest(weight: np.ndarray, sparsity: float) -> None:
    pruned = magnitude_prune(weight, sparsity)
    k = round(sparsity * weight.size)
    changed = pruned.reshape(-1) != weight.reshape(-1)
    zeroed = np.flatnonzero(changed | (weight.reshape(-1) == 0))
    assert pruned.shape == weight.shape and pruned.dtype == weight.dtype
    assert np.all(pruned.reshape(-1)[changed] == 0)
    assert not np.signbit(pruned.reshape(-1)[changed]).any()  # +0.0
    # exactly k elements were pruned: the zeros are at least k, and at most k plus the original zeros
    zeros = int(np.count_nonzero(pruned == 0))
    assert k <= zeros <= k + int(np.count_nonzero(weight == 0))
    assert zeroed.size >= k
    kept = np.abs(pruned[pruned != 0])
    if kept.size and changed.any():
        assert np.abs(weight.reshape(-1)[changed]).max() <= kept.min()


def test_magnitude_prune_exact_count_and_input_untouched() -> None:
    weight = np.random.default_rng(0).standard_normal((37, 11)).astype(np.float32)
    copy = weight.copy()
    for sparsity in (0.0, 0.1, 0.5, 0.9, 0.95, 1.0):
        pruned = magnitude_prune(weight, sparsity)
        assert np.count_nonzero(pruned == 0) == round(sparsity * weight.size)
        threshold = np.sort(np.abs(weight).ravel())[round(sparsity * weight.size) - 1] if sparsity else -1
        assert np.all(np.abs(pruned[pruned != 0]) > threshold)
    np.testing.assert_array_equal(weight, copy)


@pytest.mark.parametrize("sparsity", [-0.1, 1.5])
def test_bad_sparsity(sparsity: float) -> None:
    with pytest.raises(ValueError, match="sparsity must be in"):
        magnitude_prune(np.ones(4, np.float32), sparsity)


def test_prune_model() -> None:
    constant = ", ".join(map(str, np.random.default_rng(5).standard_normal(24 * 16)))
    model = parse(
        f"""{HEADER} g (float[3,32] a, float[1,4,8,8] x) => (float[3,24] y1, float[3,24] y2,
                                                                     float[3,16] y3, float[1,8,6,6] c) {{
        y1 = MatMul(a, W)
        y2 = Gemm <alpha=2.0> (a, W, C)
        wc = Constant <value = float[24,16] {{{constant}}}> ()
        y3 = MatMul(y1, wc)
        c = Conv(x, K, KB)
    }}""",
        W=sparse((32, 24), 0.0),
        C=np.ones(24, np.float32),
        K=sparse((8, 4, 3, 3), 0.0),
        KB=np.ones(8, np.float32),
    )
    before = model.SerializeToString()
    result = prune_model(model, 0.9)
    assert model.SerializeToString() == before
    assert [(w.name, len(w.nodes)) for w in result.weights] == [("W", 2), ("wc", 1), ("K", 1)]
    values = constant_values(result.model)
    for name in ("W", "wc", "K"):
        assert np.count_nonzero(values[name] == 0) == round(0.9 * values[name].size), name
        assert result.weights[[w.name for w in result.weights].index(name)].sparsity == pytest.approx(
            round(0.9 * values[name].size) / values[name].size
        )
    original = constant_values(model)
    for name in ("C", "KB"):  # biases are not pruned
        np.testing.assert_array_equal(values[name], original[name])
    assert [n.op_type for n in result.model.graph.node] == [n.op_type for n in model.graph.node]


def test_prune_ops_and_method() -> None:
    model = parse(
        f"{HEADER} g (float[3,32] a) => (float[3,24] y) {{ y = MatMul(a, W) }}", W=sparse((32, 24), 0.0)
    )
    assert prune_model(model, 0.5, ops=["Conv"]).weights == []
    assert np.count_nonzero(constant_values(prune(model, 0.5, ops=["MatMul"]))["W"] == 0) == 384
    with pytest.raises(ValueError, match="unknown pruning method"):
        prune(model, 0.5, method="random")
    with pytest.raises(ValueError, match="cannot prune op type"):
        prune(model, 0.5, ops=["Relu"])
