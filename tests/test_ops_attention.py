"""LSCAttention (lsc_ort/ops.py) against float64 numpy, onnxruntime's unfused ops and the numpy
reference op, for every kernel variant; its non-finite rows; and each class of bad input."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from lsc_ort.reference import reference_evaluator
from tests.hostile import run_python
from tests.op_models import assert_close, attention_model, reference_attention, session

# (lead dims of Q, K, V), S, T, H, Hv, bias shape: rank 4 and 3, broadcast heads and batches,
# tails of every vector width, one key, more keys than a register tile, masks of every rank.
CASES = [
    (((1, 12), (1, 12), (1, 12)), 128, 128, 32, 32, (1, 1, 1, 128)),
    (((2, 3), (2, 3), (2, 3)), 17, 33, 5, 7, (2, 1, 17, 33)),
    (((1, 1), (1, 1), (1, 1)), 1, 1, 1, 1, None),
    (((1, 2), (1, 2), (1, 2)), 70, 130, 64, 40, (1,)),
    (((3, 1), (3, 1), (3, 1)), 5, 200, 16, 48, (5, 200)),
    (((1, 4), (1, 4), (1, 4)), 9, 65, 3, 33, (4, 1, 1)),
    (((2, 4), (1, 4), (2, 1)), 12, 20, 8, 8, (2, 4, 12, 20)),
    (((6,), (6,), (6,)), 31, 47, 16, 16, (6, 1, 47)),
    (((5,), (1,), (5,)), 64, 64, 64, 64, (64,)),
    (((1, 2), (1, 2), (1, 2)), 3, 1000, 8, 100, (1, 2, 1, 1000)),
]


def _inputs(case: tuple, rng: np.random.Generator) -> dict[str, np.ndarray]:
    (lq, lk, lv), s, t, h, hv, bias = case
    feeds = {"Q": rng.standard_normal((*lq, s, h)).astype(np.float32),
             "K": rng.standard_normal((*lk, h, t)).astype(np.float32),
             "V": rng.standard_normal((*lv, t, hv)).astype(np.float32)}
    if bias is not None:
        feeds["M"] = (rng.standard_normal(bias) * 2).astype(np.float32)
    return feeds


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"S{c[1]}-T{c[2]}-H{c[3]}-Hv{c[4]}-rank{len(c[0][0]) + 2}")
def test_attention_matches_float64(case: tuple, threads: int, isa: str, rng: np.random.Generator) -> None:
    feeds = _inputs(case, rng)
    model = attention_model(bias="M" in feeds, scale=0.3)
    (y,) = session(model, threads).run(None, feeds)
    expected = reference_attention(feeds["Q"], feeds["K"], feeds["V"], feeds.get("M"), 0.3)
    assert_close(y, expected, 1e-5)
    (oracle,) = reference_evaluator(onnx.load_from_string(model)).run(None, feeds)
    assert_close(oracle, expected, 1e-6)


def _unfused(rank: int, bias: bool, scale: float) -> bytes:
    """onnxruntime's MatMul, Mul, Add, Softmax, MatMul: what the rewriter fuses."""
    nodes = [helper.make_node("MatMul", ["Q", "K"], ["s"]), helper.make_node("Mul", ["s", "c"], ["x"])]
    if bias:
        nodes.append(helper.make_node("Add", ["x", "M"], ["xb"]))
    nodes += [helper.make_node("Softmax", ["xb" if bias else "x"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "V"], ["Y"])]
    names = ["Q", "K", "V", *(["M"] if bias else [])]
    graph = helper.make_graph(nodes, "unfused", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                                                 for n in names],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              [helper.make_tensor("c", TensorProto.FLOAT, [], [scale])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("mask_value", [-1e4, float(np.finfo(np.float32).min), -np.inf])
def test_padding_masks_as_onnxruntime(mask_value: float, rng: np.random.Generator) -> None:
    """Masked keys (the padding of a batch) weigh nothing, whatever the exporter's mask value."""
    q = rng.standard_normal((2, 4, 16, 8)).astype(np.float32)
    k = rng.standard_normal((2, 4, 8, 16)).astype(np.float32)
    v = rng.standard_normal((2, 4, 16, 8)).astype(np.float32)
    mask = np.zeros((2, 1, 1, 16), np.float32)
    mask[1, ..., 9:] = mask_value
    feeds = {"Q": q, "K": k, "V": v, "M": mask}
    (y,) = session(attention_model(bias=True, scale=0.35)).run(None, feeds)
    (dense,) = ort.InferenceSession(_unfused(4, True, 0.35)).run(None, feeds)
    assert_close(y, dense.astype(np.float64), 1e-5)
    (short,) = session(attention_model(scale=0.35)).run(None, {"Q": q[1:], "K": k[1:, ..., :9], "V": v[1:, :, :9]})
    assert_close(y[1:], short.astype(np.float64), 1e-5)


def test_non_finite_rows(isa: str, rng: np.random.Generator) -> None:
    """A NaN among a row's scores, or an infinite maximum, makes that row NaN (as Softmax does);
    a row whose keys are all masked with -inf too; the other rows are untouched."""
    q = rng.standard_normal((1, 1, 6, 4)).astype(np.float32)
    k = rng.standard_normal((1, 1, 4, 40)).astype(np.float32)
    v = rng.standard_normal((1, 1, 40, 20)).astype(np.float32)
    bias = np.zeros((1, 1, 6, 40), np.float32)
    bias[0, 0, 1, 7] = np.nan
    bias[0, 0, 2, 33] = np.inf
    bias[0, 0, 3, :] = -np.inf
    bias[0, 0, 4, 3:] = -np.inf  # three keys left
    feeds = {"Q": q, "K": k, "V": v, "M": bias}
    (y,) = session(attention_model(bias=True)).run(None, feeds)
    assert np.isnan(y[0, 0, 1:4]).all()
    finite = [0, 4, 5]
    expected = reference_attention(q, k, v, np.where(np.isfinite(bias), bias, -1e30))
    assert_close(y[0, 0, finite], expected[0, 0, finite], 1e-5)
    (oracle,) = reference_evaluator(onnx.load_from_string(attention_model(bias=True))).run(None, feeds)
    assert np.array_equal(np.isnan(oracle), np.isnan(y))


def test_empty_axes() -> None:
    """No keys weighs no values (zeros, as MatMul over an empty axis); no queries, no rows."""
    sess = session(attention_model())
    (y,) = sess.run(None, {"Q": np.ones((1, 2, 3, 4), np.float32), "K": np.ones((1, 2, 4, 0), np.float32),
                           "V": np.ones((1, 2, 0, 5), np.float32)})
    assert y.shape == (1, 2, 3, 5) and not y.any()
    (y,) = sess.run(None, {"Q": np.ones((1, 2, 0, 4), np.float32), "K": np.ones((1, 2, 4, 6), np.float32),
                           "V": np.ones((1, 2, 6, 5), np.float32)})
    assert y.shape == (1, 2, 0, 5)


BAD_SHAPES = [
    ((1, 2, 3, 4), (1, 2, 4, 5), (2, 5, 6), None, "must have the same rank"),
    ((2, 3, 4), (2, 4, 5), (2, 5, 6), None, None),  # rank 3: fine
    ((1, 2, 3, 4), (1, 2, 3, 5), (1, 2, 5, 6), None, "do not chain"),
    ((1, 2, 3, 4), (1, 2, 4, 5), (1, 2, 4, 6), None, "do not chain"),
    ((1, 2, 3, 4), (1, 3, 4, 5), (1, 2, 5, 6), None, "do not broadcast"),
    ((3, 4), (4, 5), (5, 6), None, "must have rank 3 or 4"),
    ((1, 2, 3, 4), (1, 2, 4, 5), (1, 2, 5, 6), (1, 2, 3, 7), "does not broadcast to the scores' shape [1, 2, 3, 5]"),
    ((1, 2, 1, 4), (1, 2, 4, 5), (1, 2, 5, 6), (1, 2, 3, 5), "does not broadcast to the scores' shape [1, 2, 1, 5]"),
    ((1, 2, 3, 4), (1, 2, 4, 5), (1, 2, 5, 6), (1, 1, 2, 3, 5), "of rank above Q's"),
]


@pytest.mark.parametrize("q, k, v, bias, message", BAD_SHAPES)
def test_bad_shapes_name_op_node_and_problem(q: tuple, k: tuple, v: tuple, bias: tuple | None,
                                            message: str | None) -> None:
    feeds = {"Q": np.ones(q, np.float32), "K": np.ones(k, np.float32), "V": np.ones(v, np.float32)}
    if bias is not None:
        feeds["M"] = np.zeros(bias, np.float32)
    sess = session(attention_model(bias=bias is not None))
    if message is None:
        sess.run(None, feeds)
        return
    with pytest.raises(Exception, match=r"\[LSCAttention\] node 'lsc_attention': ") as error:
        sess.run(None, feeds)
    assert message in str(error.value)
    with pytest.raises(ValueError):
        reference_evaluator(onnx.load_from_string(attention_model(bias=bias is not None))).run(None, feeds)


@pytest.mark.parametrize("scale", [float("inf"), float("nan")])
def test_non_finite_scale_is_refused(scale: float) -> None:
    with pytest.raises(Exception, match=r"\[LSCAttention\] node 'lsc_attention': attribute scale must be finite"):
        session(attention_model(scale=scale))


def test_work_is_bounded_as_the_unfused_scores() -> None:
    """Q and K of one column each can ask for S x T scores with little data: refused when the
    unfused score tensor would exceed the memory budget, as it would need that much."""
    code = """
import numpy as np
from tests.op_models import attention_model, session
sess = session(attention_model())
try:
    sess.run(None, {"Q": np.ones((1, 1, 100000, 1), np.float32), "K": np.ones((1, 1, 1, 100000), np.float32),
                    "V": np.ones((1, 1, 100000, 1), np.float32)})
    print("no error")
except Exception as e:
    print(str(e).split("\\n")[0])
"""
    line = run_python(code, timeout=120, LSC_ORT_MEMORY_BUDGET_MB="64").strip()
    assert "[LSCAttention] node 'lsc_attention': the scores [B, N, S, T] would need 38147 MiB, more than" in line, line


def test_inputs_are_not_modified(rng: np.random.Generator) -> None:
    feeds = _inputs(CASES[1], rng)
    copies = {name: value.copy() for name, value in feeds.items()}
    session(attention_model(bias=True, scale=2.0), 2).run(None, feeds)
    assert all(np.array_equal(feeds[name], copies[name]) for name in feeds)
