"""Weights pruned by multiplying with a mask hold -0.0; the rewriter stores them as +0.0 unless
told to keep them."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import lsc_ort
from lsc_ort.rewriter import rewrite_model


def masked_model() -> tuple[onnx.ModelProto, np.ndarray]:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((64, 32)).astype(np.float32)
    weight = weight * (rng.random(weight.shape) < 0.1)  # -0.0 where a negative weight was pruned
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "W"], ["Y"], name="mm")], "g",
                              [helper.make_tensor_value_info("A", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 32])],
                              [numpy_helper.from_array(weight, "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), weight


def blob_of(model: onnx.ModelProto) -> bytes:
    [blob] = [numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("_lsc_blob")]
    return blob.tobytes()


def test_negative_zeros_are_stored_as_positive_zeros() -> None:
    model, weight = masked_model()
    negative = int(np.count_nonzero(np.signbit(weight) & (weight == 0)))
    assert negative > 500
    result = rewrite_model(model)
    [row] = result.layers
    assert row.sparsity > 0.85
    assert f"{negative:,} weights of -0.0 stored as +0.0" in row.note
    decoded = lsc_ort.decode(blob_of(result.model))
    assert not np.signbit(decoded[decoded == 0]).any()
    np.testing.assert_array_equal(decoded, weight)  # equal values; only the sign of zero changed


def test_keep_negative_zeros_keeps_the_bit_patterns() -> None:
    model, weight = masked_model()
    result = rewrite_model(model, keep_negative_zeros=True, min_sparsity=0.0)
    [row] = result.layers
    assert row.sparsity < 0.5
    assert lsc_ort.decode(blob_of(result.model)).tobytes() == weight.tobytes()
