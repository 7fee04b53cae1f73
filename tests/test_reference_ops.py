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
from tests.tile_models import TILE_M, from_tiles, leading, tile_chain, to_tiles

OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid(lsc_ort.DOMAIN, 1)]


def one_node(
    op: str,
    inputs: dict[str, np.ndarray],
    blob: bytes,
    extra: dict[str, np.ndarray | None] | None = None,
    **attributes: object,
) -> onnx.ModelProto:
    """One ``op`` node of the graph input ``inputs`` and the blob, its further inputs ``extra``
    initializers in order (``None``: an absent optional input)."""
    extra = extra or {}
    names = [next(iter(inputs)), "W", *(k if v is not None else "" for k, v in extra.items())]
    node = helper.make_node(op, names, ["Y"], domain=lsc_ort.DOMAIN, **attributes)
    inits = [numpy_helper.from_array(np.frombuffer(blob, np.uint8), "W")]
    inits += [numpy_helper.from_array(v, k) for k, v in extra.items() if v is not None]
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


# --- attention-head layouts: input_layout / output_layout against Transpose + Reshape + MatMul ---

LAYOUTS = [("BHSD", ""), ("", "BHSD"), ("", "BHDS"), ("BHSD", "BHSD"), ("BHSD", "BHDS")]
HEAD_VARIANTS = {
    "plain": {},
    "bias-alpha": {"bias": True, "alpha": -0.75},
    "transB-relu": {"transB": 1, "activation": "Relu"},
    "bias-gelu": {"bias": True, "activation": "Gelu"},
    "float16-bias": {"bias": True, "dtype": np.float16},
}
HEADS, K, N = 3, 12, 15


def dense_epilogue(
    nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], x: str, w: np.ndarray, attrs: dict,
    extra: dict[str, np.ndarray | None],
) -> str:
    """Append to ``nodes`` / ``inits`` the standard ops (float32) of an LSCMatMul's product of
    ``x`` and the weight ``w [K, N]`` and its epilogue, as ``attrs`` (``alpha``, ``activation``,
    ``norm``, ``epsilon``) and the inputs ``extra`` (``bias``, ``Z``, ``norm_scale``,
    ``norm_bias``, any of them absent) say; return the result's name."""
    inits.append(numpy_helper.from_array(w.astype(np.float32), "W"))
    nodes.append(helper.make_node("MatMul", [x, "W"], ["P"]))
    x = "P"

    def step(op: str, *inputs: str, **kwargs: object) -> None:
        nonlocal x
        nodes.append(helper.make_node(op, [x, *inputs], [f"{x}_{op.lower()}"], **kwargs))
        x = nodes[-1].output[0]

    def value(name: str) -> str:
        inits.append(numpy_helper.from_array(np.asarray(extra[name]).astype(np.float32), name))
        return name

    if "alpha" in attrs:
        inits.append(numpy_helper.from_array(np.array(attrs["alpha"], np.float32), "alpha"))
        step("Mul", "alpha")
    for name in ("bias", "Z"):
        if extra.get(name) is not None:
            step("Add", value(name))
    if attrs.get("activation"):
        step(attrs["activation"])
    if attrs.get("norm"):
        shift = [value("norm_bias")] if extra.get("norm_bias") is not None else []
        step("LayerNormalization", value("norm_scale"), *shift, axis=-1, epsilon=attrs.get("epsilon", 1e-5))
    return x


def head_layout_models(
    layouts: tuple[str, str], variant: dict, batch: int, seq: int
) -> tuple[onnx.ModelProto, onnx.ModelProto, np.ndarray]:
    """One LSCMatMul with the layouts, the same product in standard ops (float32, opset 20) and
    an input for both."""
    variant = dict(variant)
    dtype = np.dtype(variant.pop("dtype", np.float32))
    layout_in, layout_out = layouts
    w = sparse((K, N), 0.6, seed=7)
    trans_b = variant.get("transB", 0)
    bias = np.linspace(-1, 1, N, dtype=np.float32) if variant.pop("bias", False) else None
    a_shape = (batch, HEADS, seq, K // HEADS) if layout_in else (batch, seq, K)
    a = np.random.default_rng(batch * 31 + seq).standard_normal(a_shape).astype(dtype)
    attrs = {**variant, "heads": HEADS}
    if layout_in:
        attrs["input_layout"] = layout_in
    if layout_out:
        attrs["output_layout"] = layout_out
    extra = {"bias": bias.astype(dtype)} if bias is not None else {}
    lsc = one_node("LSCMatMul", {"A": a}, lsc_ort.encode(w.T.copy() if trans_b else w, "csr"), extra, **attrs)
    nodes, inits, x = [], [], "A"
    if layout_in:
        nodes += [helper.make_node("Transpose", ["A"], ["At"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", ["At", "read"], ["Ar"])]
        inits.append(numpy_helper.from_array(np.array([0, 0, K], np.int64), "read"))
        x = "Ar"
    x = dense_epilogue(nodes, inits, x, w, attrs, {"bias": bias.astype(dtype) if bias is not None else None})
    if layout_out:
        perm = [0, 2, 1, 3] if layout_out == "BHSD" else [0, 2, 3, 1]
        nodes += [helper.make_node("Reshape", [x, "split"], ["Ps4"]),
                  helper.make_node("Transpose", ["Ps4"], ["Pt"], perm=perm)]
        inits.append(numpy_helper.from_array(np.array([0, 0, HEADS, N // HEADS], np.int64), "split"))
        x = "Pt"
    nodes.append(helper.make_node("Identity", [x], ["Y"]))
    float_type = onnx.TensorProto.FLOAT
    dense = helper.make_model(
        helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("A", float_type, a_shape)],
                          [helper.make_tensor_value_info("Y", float_type, None)], inits),
        opset_imports=[helper.make_opsetid("", 20)],
    )
    return lsc, dense, a


@pytest.mark.parametrize("layouts", LAYOUTS, ids=["-".join(x or "plain" for x in pair) for pair in LAYOUTS])
@pytest.mark.parametrize("variant", HEAD_VARIANTS)
@pytest.mark.parametrize("batch,seq", [(1, 1), (1, 5), (1, 17), (2, 1), (2, 5), (2, 17)])
def test_lsc_matmul_head_layouts(layouts: tuple[str, str], variant: str, batch: int, seq: int) -> None:
    lsc, dense, a = head_layout_models(layouts, HEAD_VARIANTS[variant], batch, seq)
    (expected,) = ReferenceEvaluator(dense).run(None, {"A": a.astype(np.float32)})
    (got,) = reference_evaluator(lsc).run(None, {"A": a})
    assert got.dtype == a.dtype
    assert_close(got, expected, 1e-2 if a.dtype == np.float16 else 1e-5)
    if layouts[1]:
        assert got.shape[:2] == (batch, HEADS) and got.flags.c_contiguous


def test_lsc_matmul_head_layout_residual() -> None:
    """Z has the plain result's shape [B, S, N] with input_layout."""
    w = sparse((K, N), 0.5, seed=3)
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, HEADS, 5, K // HEADS)).astype(np.float32)
    z = rng.standard_normal((2, 5, N)).astype(np.float32)
    model = one_node("LSCMatMul", {"A": a}, lsc_ort.encode(w, "csr"), {"bias": np.zeros(N, np.float32), "Z": z},
                     heads=HEADS, input_layout="BHSD", activation="Relu")
    (got,) = reference_evaluator(model).run(None, {"A": a})
    read = a.astype(np.float64).transpose(0, 2, 1, 3).reshape(2, 5, K)
    assert_close(got, np.maximum(read @ w + z, 0))


def _assert_layout_error(message: str, a_shape: tuple[int, ...], attrs: dict, with_z: bool) -> None:
    """The reference rejects an LSCMatMul of these layout attributes with ``message``."""
    a = np.ones(a_shape, np.float32)
    extra = {"bias": np.zeros(N, np.float32), "Z": np.zeros((2, 5, N), np.float32)} if with_z else None
    model = one_node("LSCMatMul", {"A": a}, lsc_ort.encode(sparse((K, N), 0.5), "csr"), extra, **attrs)
    with pytest.raises(Exception, match=f"LSCMatMul: {message}"):
        reference_evaluator(model).run(None, {"A": a})


@pytest.mark.parametrize(
    "message,a_shape,attrs,with_z",
    [
        (r"unknown input_layout 'BSHD'", (2, 5, 12), {"heads": 3, "input_layout": "BSHD"}, False),
        (r"unknown output_layout 'bhsd'", (2, 5, 12), {"heads": 3, "output_layout": "bhsd"}, False),
        (r"attribute heads must be >= 1 .* got 0", (2, 3, 5, 4), {"input_layout": "BHSD"}, False),
        (r"attribute heads must be >= 1 .* got -3", (2, 5, 12), {"heads": -3, "output_layout": "BHDS"}, False),
        (r"attribute heads \(3\) is only allowed with input_layout or output_layout", (2, 5, 12), {"heads": 3}, False),
        (r"input_layout BHSD needs A of rank 4 .* got shape \[2, 5, 12\]", (2, 5, 12),
         {"heads": 3, "input_layout": "BHSD"}, False),
        (r"A has shape \[2, 4, 5, 3\] .* needs A of shape \[B, 3, S, 4\]", (2, 4, 5, 3),
         {"heads": 3, "input_layout": "BHSD"}, False),
        (r"A has shape \[2, 3, 5, 3\] .* needs A of shape \[B, 3, S, 4\]", (2, 3, 5, 3),
         {"heads": 3, "input_layout": "BHSD"}, False),
        (r"heads 5 does not divide K = 12", (2, 5, 5, 2), {"heads": 5, "input_layout": "BHSD"}, False),
        (r"output_layout BHSD needs A of rank 3 .* got shape \[5, 12\]", (5, 12),
         {"heads": 3, "output_layout": "BHSD"}, False),
        (r"output_layout BHDS needs A of rank 3 .* got shape \[1, 2, 5, 12\]", (1, 2, 5, 12),
         {"heads": 3, "output_layout": "BHDS"}, False),
        (r"heads 2 does not divide N = 15", (2, 5, 12), {"heads": 2, "output_layout": "BHSD"}, False),
        (r"a residual Z cannot be combined with output_layout BHSD", (2, 5, 12),
         {"heads": 3, "output_layout": "BHSD"}, True),
    ],
)
def test_lsc_matmul_head_layout_errors(message: str, a_shape: tuple[int, ...], attrs: dict, with_z: bool) -> None:
    _assert_layout_error(message, a_shape, attrs, with_z)


# --- row tiles: input_layout / output_layout TILES against numpy ---------------------------------

TILE_LAYOUTS = [("TILES", ""), ("", "TILES"), ("TILES", "TILES")]
TILE_VARIANTS = {
    "plain": {},
    "bias-alpha-gelu": {"bias": True, "alpha": -0.75, "activation": "Gelu"},
    "transB-relu": {"transB": 1, "activation": "Relu"},
}


def tile_expected(a: np.ndarray, w: np.ndarray, variant: dict, bias: np.ndarray | None) -> np.ndarray:
    y = variant.get("alpha", 1.0) * (a.astype(np.float64) @ w.astype(np.float64))
    if bias is not None:
        y = y + bias
    if variant.get("activation") == "Relu":
        return np.maximum(y, 0)
    if variant.get("activation") == "Gelu":
        from lsc_ort.reference import gelu

        return gelu(y.astype(np.float32)).astype(np.float64)
    return y


@pytest.mark.parametrize("layouts", TILE_LAYOUTS, ids=["-".join(x or "plain" for x in p) for p in TILE_LAYOUTS])
@pytest.mark.parametrize("variant", TILE_VARIANTS)
@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("m", TILE_M)
def test_lsc_matmul_tiles(layouts: tuple[str, str], variant: str, rank: int, m: int) -> None:
    attrs = dict(TILE_VARIANTS[variant])
    with_bias = attrs.pop("bias", False)
    w = sparse((K, N), 0.6, seed=m)
    plain = np.random.default_rng(m + rank).standard_normal((*leading(m, rank), K)).astype(np.float32)
    bias = np.linspace(-1, 1, N, dtype=np.float32) if with_bias else None
    layout_in, layout_out = layouts
    attrs.update({k: v for k, v in (("input_layout", layout_in), ("output_layout", layout_out)) if v})
    a = to_tiles(plain) if layout_in else plain
    blob = lsc_ort.encode(w.T.copy() if attrs.get("transB") else w, "csr")
    model = one_node("LSCMatMul", {"A": a}, blob, {"bias": bias} if bias is not None else None, **attrs)
    (got,) = reference_evaluator(model).run(None, {"A": a})
    assert got.shape == (*plain.shape[:-1], N) and got.dtype == np.float32
    assert_close(from_tiles(got) if layout_out else got, tile_expected(plain, w, attrs, bias))


def test_lsc_matmul_tiles_rank_one_and_float16() -> None:
    """A of rank 1 is one row (a tile of one row is plain); float16 tiles as float32 do."""
    w = sparse((K, N), 0.5, seed=2)
    a = np.random.default_rng(3).standard_normal(K).astype(np.float32)
    model = one_node("LSCMatMul", {"A": a}, lsc_ort.encode(w, "csr"), input_layout="TILES", output_layout="TILES")
    (got,) = reference_evaluator(model).run(None, {"A": a})
    assert_close(got, a.astype(np.float64) @ w)
    plain = np.random.default_rng(4).standard_normal((70, K)).astype(np.float16)
    model = one_node("LSCMatMul", {"A": plain}, lsc_ort.encode(w, "csr"), input_layout="TILES",
                     output_layout="TILES")
    (got,) = reference_evaluator(model).run(None, {"A": to_tiles(plain)})
    assert got.dtype == np.float16
    assert_close(from_tiles(got), plain.astype(np.float64) @ w, 1e-2)


TILE_HEAD_LAYOUTS = [("TILES", "BHSD"), ("TILES", "BHDS"), ("BHSD", "TILES")]


@pytest.mark.parametrize("layouts", TILE_HEAD_LAYOUTS, ids=["-".join(p) for p in TILE_HEAD_LAYOUTS])
@pytest.mark.parametrize("variant", ["plain", "bias-gelu", "transB-relu"])
@pytest.mark.parametrize("m", TILE_M)
def test_lsc_matmul_tiles_with_head_layouts(layouts: tuple[str, str], variant: str, m: int) -> None:
    """TILES on one side, a head layout (with heads) on the other, against the same product in
    standard ops on the plain tensor."""
    batch, seq = leading(m, 3)
    head_side = (layouts[0].replace("TILES", ""), layouts[1].replace("TILES", ""))
    lsc, dense, a = head_layout_models(head_side, HEAD_VARIANTS[variant], batch, seq)
    (expected,) = ReferenceEvaluator(dense).run(None, {"A": a})
    side = "input_layout" if layouts[0] == "TILES" else "output_layout"
    lsc.graph.node[0].attribute.append(helper.make_attribute(side, "TILES"))
    (got,) = reference_evaluator(lsc).run(None, {"A": to_tiles(a) if layouts[0] == "TILES" else a})
    if layouts[1] == "TILES":
        assert got.shape == (batch, seq, N)
        got = from_tiles(got)
    assert_close(got, expected)


@pytest.mark.parametrize("m", TILE_M)
@pytest.mark.parametrize("dims", [(12, 15, 7), (12, 15, 9, 6)], ids=["two", "three"])
def test_tile_chain_is_the_plain_chain(m: int, dims: tuple[int, ...]) -> None:
    """LSCMatMul nodes that hand their results on in TILES compute the plain chain of products."""
    chain = tile_chain(["B", "S", dims[0]], dims)
    x = np.random.default_rng(m).standard_normal((*leading(m, 3), dims[0])).astype(np.float32)
    (got,) = reference_evaluator(chain.model).run(None, {"x": x})
    assert_close(got, chain.expected(x))


def test_tile_chain_with_head_layouts_outside() -> None:
    chain = tile_chain(["B", 3, "S", 4], (12, 15, 9), input_layout="BHSD", output_layout="BHDS", heads=3)
    x = np.random.default_rng(0).standard_normal((2, 3, 33, 4)).astype(np.float32)
    (got,) = reference_evaluator(chain.model).run(None, {"x": x})
    assert got.shape == (2, 3, 3, 33)
    assert_close(got, chain.expected(x))


@pytest.mark.parametrize(
    "message,a_shape,attrs,with_z",
    [
        (r"attribute heads \(3\) is only allowed with input_layout or output_layout BHSD or BHDS \(TILES takes none\)",
         (5, 12), {"heads": 3, "output_layout": "TILES"}, False),
        (r"attribute heads \(3\) is only allowed .* \(TILES takes none\)", (5, 12),
         {"heads": 3, "input_layout": "TILES", "output_layout": "TILES"}, False),
        (r"attribute heads must be >= 1 with a head layout .* got 0", (2, 5, 12),
         {"input_layout": "TILES", "output_layout": "BHSD"}, False),
        (r"a residual Z cannot be combined with output_layout TILES", (2, 5, 12), {"output_layout": "TILES"}, True),
        (r"a residual Z cannot be combined with output_layout TILES", (2, 5, 12),
         {"input_layout": "TILES", "output_layout": "TILES"}, True),
        (r"output_layout BHSD needs A as read \(after input_layout\) of rank 3 .* got shape \[10, 12\]", (10, 12),
         {"heads": 3, "input_layout": "TILES", "output_layout": "BHSD"}, False),
        (r"A has shape \[2, 5, 10\] but the weight is 12x15", (2, 5, 10), {"input_layout": "TILES"}, False),
        (r"unknown output_layout 'tiles'", (2, 5, 12), {"output_layout": "tiles"}, False),
    ],
)
def test_lsc_matmul_tile_layout_errors(message: str, a_shape: tuple[int, ...], attrs: dict, with_z: bool) -> None:
    _assert_layout_error(message, a_shape, attrs, with_z)


def test_lsc_matmul_tiles_residual_with_tiled_input() -> None:
    """Z stays plain [..., N] when only A is in TILES."""
    w = sparse((K, N), 0.5, seed=5)
    rng = np.random.default_rng(6)
    plain, z = rng.standard_normal((70, K)).astype(np.float32), rng.standard_normal((70, N)).astype(np.float32)
    model = one_node("LSCMatMul", {"A": plain}, lsc_ort.encode(w, "csr"), {"bias": np.zeros(N, np.float32), "Z": z},
                     input_layout="TILES", activation="Relu")
    (got,) = reference_evaluator(model).run(None, {"A": to_tiles(plain)})
    assert_close(got, np.maximum(plain.astype(np.float64) @ w + z, 0))


# --- row normalization (norm="LayerNorm") and residuals Z that broadcast, against standard ops ---

NORM_SHAPES = {  # A, Z (None: no residual)
    "rank2": ((4, K), None),
    "rank3-Z-BSN": ((2, 3, K), (2, 3, N)),
    "Z-1SN": ((2, 3, K), (1, 3, N)),
    "A-1SK": ((1, 3, K), (2, 3, N)),
    "Z-N": ((2, 3, K), (N,)),
    "Z-of-higher-rank": ((3, K), (2, 3, N)),
    "rank1": ((K,), (N,)),
}
NORM_VARIANTS = {
    "plain": {},
    "norm-bias": {"norm_bias": True},
    "epsilon": {"norm_bias": True, "epsilon": 0.5},
    "epsilon-0": {"epsilon": 0.0},
    "bias-relu": {"bias": True, "activation": "Relu", "norm_bias": True},
    "alpha-gelu-transB": {"alpha": -0.75, "activation": "Gelu", "transB": 1, "norm_bias": True},
    "float16": {"dtype": np.float16, "bias": True, "norm_bias": True},
    "no-norm": {"norm": "", "bias": True, "activation": "Relu"},
}


def norm_models(
    a_shape: tuple[int, ...], z_shape: tuple[int, ...] | None, variant: dict
) -> tuple[onnx.ModelProto, onnx.ModelProto, np.ndarray]:
    """One LSCMatMul with the variant's norm (``LayerNorm`` unless it says ``norm=""``) and a
    residual Z of ``z_shape``, the same in standard ops (float32, opset 20) and an input ``A``."""
    attrs = {"norm": "LayerNorm", **variant}
    dtype = np.dtype(attrs.pop("dtype", np.float32))
    rng = np.random.default_rng(len(a_shape) * 7 + len(z_shape or ()))
    w = sparse((K, N), 0.6, seed=8)
    a = rng.standard_normal(a_shape).astype(dtype)

    def vector(on: bool, low: float, high: float) -> np.ndarray | None:
        return np.linspace(low, high, N).astype(dtype) if on else None

    extra = {
        "bias": vector(attrs.pop("bias", False), -1, 1),
        "Z": None if z_shape is None else rng.standard_normal(z_shape).astype(dtype),
        "norm_scale": vector(bool(attrs["norm"]), 0.5, 2),
        "norm_bias": vector(attrs.pop("norm_bias", False), 1, -0.5),
    }
    while extra and next(reversed(extra.values())) is None:
        extra.popitem()
    if not attrs["norm"]:
        del attrs["norm"]
    blob = lsc_ort.encode(w.T.copy() if attrs.get("transB") else w, "csr")
    lsc = one_node("LSCMatMul", {"A": a}, blob, extra, **attrs)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    y = dense_epilogue(nodes, inits, "A", w, attrs, extra)
    float_type = onnx.TensorProto.FLOAT
    dense = helper.make_model(
        helper.make_graph([*nodes, helper.make_node("Identity", [y], ["Y"])], "dense",
                          [helper.make_tensor_value_info("A", float_type, a_shape)],
                          [helper.make_tensor_value_info("Y", float_type, None)], inits),
        opset_imports=[helper.make_opsetid("", 20)],
    )
    return lsc, dense, a


@pytest.mark.parametrize("shapes", NORM_SHAPES)
@pytest.mark.parametrize("variant", NORM_VARIANTS)
def test_lsc_matmul_norm_and_broadcast_residual(shapes: str, variant: str) -> None:
    """The reference against onnxruntime's MatMul, Add (broadcasting), activation and
    LayerNormalization on the same values."""
    a_shape, z_shape = NORM_SHAPES[shapes]
    lsc, dense, a = norm_models(a_shape, z_shape, NORM_VARIANTS[variant])
    (expected,) = run_ort(dense, {"A": a.astype(np.float32)})
    (got,) = reference_evaluator(lsc).run(None, {"A": a})
    assert got.dtype == a.dtype
    assert got.shape == np.broadcast_shapes((*a_shape[:-1], N), z_shape or (N,))
    assert_close(got, expected, 1e-2 if a.dtype == np.float16 else 1e-5)


@pytest.mark.parametrize("layout_in", ["BHSD", "TILES"])
def test_lsc_matmul_norm_with_input_layout(layout_in: str) -> None:
    """norm combines with input_layout: the plain op's result on the A it reads."""
    lsc, _, plain = norm_models((2, 70, K), (1, 70, N), {"norm_bias": True, "activation": "Gelu"})
    (expected,) = reference_evaluator(lsc).run(None, {"A": plain})
    if layout_in == "BHSD":
        a = np.ascontiguousarray(plain.reshape(2, 70, HEADS, K // HEADS).transpose(0, 2, 1, 3))
        lsc.graph.node[0].attribute.append(helper.make_attribute("heads", HEADS))
    else:
        a = to_tiles(plain)
    lsc.graph.node[0].attribute.append(helper.make_attribute("input_layout", layout_in))
    lsc.graph.input[0].CopyFrom(helper.make_tensor_value_info("A", onnx.TensorProto.FLOAT, a.shape))
    (got,) = reference_evaluator(lsc).run(None, {"A": a})
    assert_close(got, expected, 1e-6)


def test_lsc_matmul_norm_of_constant_rows() -> None:
    """A row of equal values normalizes to norm_bias (0 / sqrt(epsilon)); with epsilon 0 to NaN,
    as LayerNormalization gives."""
    a = np.zeros((2, K), np.float32)
    scale, shift = np.full(N, 2, np.float32), np.linspace(-1, 1, N, dtype=np.float32)
    for epsilon, expected in ((1e-5, np.broadcast_to(shift, (2, N))), (0.0, np.full((2, N), np.nan))):
        model = one_node("LSCMatMul", {"A": a}, lsc_ort.encode(sparse((K, N), 0.5), "csr"),
                         {"bias": None, "Z": None, "norm_scale": scale, "norm_bias": shift}, norm="LayerNorm",
                         epsilon=epsilon)
        (got,) = reference_evaluator(model).run(None, {"A": a})
        np.testing.assert_array_equal(got, expected)


def _norm_error_model(a_shape: tuple[int, ...], extra: dict, attrs: dict) -> onnx.ModelProto:
    """One LSCMatMul (K x N) whose optional inputs are ``extra``, each given as a shape or ``None``."""
    values = {name: None if shape is None else np.ones(shape, np.float32) for name, shape in extra.items()}
    return one_node("LSCMatMul", {"A": np.ones(a_shape, np.float32)}, lsc_ort.encode(sparse((K, N), 0.5), "csr"),
                    values, **attrs)


NORM = {"norm": "LayerNorm"}
SCALE = {"bias": None, "Z": None, "norm_scale": (N,)}


@pytest.mark.parametrize(
    "message,a_shape,extra,attrs",
    [
        (r"unknown norm 'RMSNorm'", (2, K), SCALE, {"norm": "RMSNorm"}),
        (r"unknown norm 'layernorm'", (2, K), SCALE, {"norm": "layernorm"}),
        (r"attribute epsilon must be finite and >= 0, got nan", (2, K), SCALE, {**NORM, "epsilon": float("nan")}),
        (r"attribute epsilon must be finite and >= 0, got inf", (2, K), SCALE, {**NORM, "epsilon": float("inf")}),
        (r"attribute epsilon must be finite and >= 0, got -0.5", (2, K), SCALE, {**NORM, "epsilon": -0.5}),
        (r"attribute epsilon must be finite and >= 0, got -1", (2, K), {}, {"epsilon": -1.0}),
        (r"norm LayerNorm needs input 4 norm_scale \[N\]", (2, K), {}, NORM),
        (r"norm LayerNorm needs input 4 norm_scale", (2, K), {"bias": None, "Z": None, "norm_scale": None,
                                                            "norm_bias": (N,)}, NORM),
        (r"input\(s\) norm_scale given without attribute norm", (2, K), SCALE, {}),
        (r"input\(s\) norm_scale, norm_bias given without attribute norm", (2, K), {**SCALE, "norm_bias": (N,)},
         {"norm": ""}),
        (r"input\(s\) norm_bias given without attribute norm", (2, K),
         {"bias": None, "Z": None, "norm_scale": None, "norm_bias": (N,)}, {}),
        (rf"norm_scale has shape \[{N + 1}\], expected \[{N}\]", (2, K), {**SCALE, "norm_scale": (N + 1,)}, NORM),
        (rf"norm_scale has shape \[1, {N}\], expected \[{N}\]", (2, K), {**SCALE, "norm_scale": (1, N)}, NORM),
        (rf"norm_bias has shape \[{K}\], expected \[{N}\]", (2, K), {**SCALE, "norm_bias": (K,)}, NORM),
        (r"norm LayerNorm cannot be combined with output_layout BHSD", (2, 5, K), SCALE,
         {**NORM, "heads": HEADS, "output_layout": "BHSD"}),
        (r"norm LayerNorm cannot be combined with output_layout TILES", (2, 5, K), SCALE,
         {**NORM, "output_layout": "TILES"}),
        (rf"Z has shape \[2, 5, {K}\] but its last dimension must be N = {N}", (2, 5, K),
         {"bias": None, "Z": (2, 5, K)}, {}),
        (rf"Z has shape \[\] but its last dimension must be N = {N}", (2, 5, K), {"bias": None, "Z": ()}, {}),
        (rf"Z has shape \[3, 5, {N}\], which does not broadcast with the product's shape \[2, 5, {N}\]",
         (2, 5, K), {"bias": None, "Z": (3, 5, N)}, {}),
        (rf"Z has shape \[4, {N}\], which does not broadcast with the product's shape \[2, 5, {N}\]",
         (2, 5, K), {"bias": None, "Z": (4, N), "norm_scale": (N,)}, NORM),
    ],
)
def test_lsc_matmul_norm_and_residual_errors(message: str, a_shape: tuple[int, ...], extra: dict,
                                             attrs: dict) -> None:
    model = _norm_error_model(a_shape, extra, attrs)
    with pytest.raises(ValueError, match=f"LSCMatMul: {message}"):
        reference_evaluator(model).run(None, {"A": np.ones(a_shape, np.float32)})


def test_lsc_conv_residual_does_not_broadcast() -> None:
    """LSCConv's Z keeps exactly Y's shape."""
    x = np.ones((2, 4, 5, 5), np.float32)
    model = one_node("LSCConv", {"X": x}, lsc_ort.encode(sparse((6, 4, 3, 3), 0.5), "csr"),
                     {"B": None, "Z": np.ones((1, 6, 3, 3), np.float32)})
    with pytest.raises(ValueError, match=r"LSCConv: Z has shape \[1, 6, 3, 3\] but Y has shape \[2, 6, 3, 3\]"):
        reference_evaluator(model).run(None, {"X": x})


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
        ("LSCAttention", lsc_ort.DOMAIN),
    }
    assert LSCMatMul in NEW_OPS and LSCConv in NEW_OPS


def test_reference_evaluator_takes_a_path(tmp_path) -> None:
    a = np.ones((2, 5), np.float32)
    w = sparse((5, 3), 0.5)
    onnx.save_model(one_node("LSCMatMul", {"A": a}, lsc_ort.encode(w, "csr")), tmp_path / "m.onnx")
    (got,) = reference_evaluator(tmp_path / "m.onnx").run(None, {"A": a})
    assert_close(got, a @ w)


# --- non-finite values: structural-zero semantics, the same in the reference and the kernels ---


def brute_force_matmul(a: np.ndarray, w: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """The IEEE sum of a[m, k] * w[k, n] over the stored k only, term by term (float64)."""
    out = np.zeros((a.shape[0], w.shape[1]))
    with np.errstate(invalid="ignore", over="ignore"):
        for m in range(a.shape[0]):
            for n in range(w.shape[1]):
                ks = np.flatnonzero(stored[:, n])
                out[m, n] = np.sum(a[m, ks].astype(np.float64) * w[ks, n].astype(np.float64))
    return out


def assert_same_non_finite(got: np.ndarray, expected: np.ndarray, tolerance: float = 1e-4) -> None:
    """NaN where expected is NaN, the same infinities, and close finite values."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.where(np.isinf(got), got, 0), np.where(np.isinf(expected), expected, 0))
    finite = np.isfinite(expected)
    assert_close(got[finite], expected[finite].astype(np.float32), tolerance)


def hostile_values(shape: tuple[int, ...], seed: int, fraction: float = 0.04) -> np.ndarray:
    """Standard-normal float32 with NaN, +inf, -inf and zeros sprinkled in."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    for value in (np.nan, np.inf, -np.inf, 0.0):
        flat[rng.random(flat.size) < fraction] = value
    return x


def hostile_weight(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A 70 %-sparse weight with a few stored -0.0, NaN, +inf and -inf."""
    w = sparse(shape, 0.7, seed=seed)
    flat = w.reshape(-1)
    nonzero = np.flatnonzero(flat)
    rng = np.random.default_rng(seed + 1)
    for value, count in ((-0.0, 3), (np.nan, 1), (np.inf, 1), (-np.inf, 1)):
        flat[rng.choice(nonzero, count, replace=False)] = value
    return w


@pytest.mark.parametrize("seed", range(4))
def test_sparse_matmul_is_the_sum_over_stored_weights(seed: int) -> None:
    from lsc_ort.reference import sparse_matmul

    a = hostile_values((9, 40), seed)
    w = hostile_weight((40, 13), seed) if seed % 2 else sparse((40, 13), 0.7, seed=seed)
    stored = w.view(np.uint32) != 0
    got = sparse_matmul(a, w, stored)
    assert_same_non_finite(got, brute_force_matmul(a, w, stored))
    assert np.isnan(got).any() and np.isinf(got).any()
    # a NaN meeting only absent weights does not spread, unlike dense MatMul
    with np.errstate(invalid="ignore"):
        assert np.isnan(a @ w).sum() > np.isnan(got).sum()


def test_finite_inputs_take_the_plain_matmul() -> None:
    from lsc_ort.reference import sparse_matmul

    a, w = hostile_values((4, 8), 0, fraction=0.0), sparse((8, 5), 0.5)
    np.testing.assert_array_equal(sparse_matmul(a, w, w != 0), a @ w)


@pytest.mark.parametrize("codec", lsc_ort.available_codecs())
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_lsc_matmul_non_finite_reference_and_native_agree(codec: str, batch: int) -> None:
    k, n = 96, 40
    a = hostile_values((batch, k), seed=batch)
    for w, trans_b in ((sparse((k, n), 0.8, seed=2), 0), (hostile_weight((n, k), seed=3), 1)):
        blob = lsc_ort.encode(w, codec)
        bias = np.linspace(-1, 1, n, dtype=np.float32)
        model = one_node("LSCMatMul", {"A": a}, blob, {"bias": bias}, transB=trans_b, alpha=0.5)
        matrix = w.T if trans_b else w
        expected = 0.5 * brute_force_matmul(a, matrix, matrix.view(np.uint32) != 0) + bias
        (got,) = reference_evaluator(model).run(None, {"A": a})
        assert_same_non_finite(got, expected)
        if NATIVE:
            (native,) = run_ort(model, {"A": a})
            assert_same_non_finite(native, expected)


NON_FINITE_CONVS = {
    "2d-pads": ((2, 4, 9, 9), (6, 4, 3, 3), {"pads": [1, 1, 1, 1]}),
    "2d-stride-dilation": ((1, 4, 11, 10), (6, 4, 3, 2), {"strides": [2, 1], "dilations": [1, 2]}),
    "groups-same-upper": ((1, 6, 7, 7), (9, 2, 3, 3), {"group": 3, "auto_pad": "SAME_UPPER"}),
    "1x1": ((3, 8, 5, 5), (16, 8, 1, 1), {}),
    "1d": ((2, 3, 16), (5, 3, 4), {"pads": [2, 1]}),
}


@pytest.mark.parametrize("case", NON_FINITE_CONVS)
@pytest.mark.parametrize("hostile_w", [False, True])
def test_lsc_conv_non_finite_reference_and_native_agree(case: str, hostile_w: bool) -> None:
    from lsc_ort.reference import _conv_pads, _im2col

    x_shape, w_shape, attrs = NON_FINITE_CONVS[case]
    x = hostile_values(x_shape, seed=len(case), fraction=0.02)
    w = hostile_weight(w_shape, seed=5) if hostile_w else sparse(w_shape, 0.7, seed=5)
    b = np.arange(w_shape[0], dtype=np.float32)
    model = one_node("LSCConv", {"X": x}, lsc_ort.encode(w, "lsc"), {"B": b}, **attrs)
    # expected: the same sum over stored weights, on im2col patches, term by term
    rank, group = len(w_shape) - 2, attrs.get("group", 1)
    strides, dilations = attrs.get("strides", [1] * rank), attrs.get("dilations", [1] * rank)
    pads = _conv_pads(x_shape[2:], w_shape[2:], strides, dilations, attrs.get("pads"), attrs.get("auto_pad", "NOTSET"))
    cols, out_shape = _im2col(x, w_shape[2:], strides, dilations, pads)
    m_g, taps = w_shape[0] // group, cols.shape[1] // group
    expected = np.zeros((x_shape[0], w_shape[0], int(np.prod(out_shape))))
    for image in range(x_shape[0]):
        for g in range(group):
            wg = w[g * m_g : (g + 1) * m_g].reshape(m_g, -1).T
            patches = cols[image, g * taps : (g + 1) * taps].T
            expected[image, g * m_g : (g + 1) * m_g] = brute_force_matmul(patches, wg, wg.view(np.uint32) != 0).T
    expected = expected.reshape(x_shape[0], w_shape[0], *out_shape) + b.reshape(-1, *([1] * rank))
    (got,) = reference_evaluator(model).run(None, {"X": x})
    assert_same_non_finite(got, expected)
    if NATIVE:
        (native,) = run_ort(model, {"X": x})
        assert_same_non_finite(native, expected)
    if not hostile_w:  # finite weights: ONNX Conv agrees wherever no NaN or infinity is involved
        finite = np.isfinite(expected)
        dense = helper.make_model(
            helper.make_graph(
                [helper.make_node("Conv", ["X", "W", "B"], ["Y"], **attrs)],
                "g",
                [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, x_shape)],
                [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)],
                [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
            ),
            opset_imports=OPSETS[:1],
        )
        (onnx_y,) = ReferenceEvaluator(dense).run(None, {"X": np.where(np.isfinite(x), x, 0)})
        assert_close(got[finite], onnx_y[finite], 1e-4)


@pytest.mark.parametrize("shape", [(2, 5, 7), (1, 3, 4, 6), (2, 2, 3, 4, 5)])
def test_global_max_pool_reduces_the_spatial_axes(shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("GlobalMaxPool", ["X"], ["Y"])],
            "g",
            [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)],
        ),
        opset_imports=OPSETS[:1],
    )
    (got,) = reference_evaluator(model).run(None, {"X": x})
    np.testing.assert_array_equal(got, x.max(axis=tuple(range(2, len(shape))), keepdims=True))
    (ort_y,) = run_ort(model, {"X": x})
    np.testing.assert_array_equal(got, ort_y)


# (kernel, pads, strides, dilations, ceil_mode) on inputs of 1 to 3 spatial axes; the first ones,
# asymmetric pads at stride 1, onnx 1.23's own reference gets wrong or fails on.
MAX_POOLS = [
    ([3, 3], [0, 1, 2, 0], [1, 1], [1, 1], 0),
    ([2, 3], [1, 0, 0, 2], [1, 1], [1, 1], 1),
    ([3], [2, 0], [1], [1], 0),
    ([2, 2, 3], [1, 0, 1, 0, 1, 2], [1, 1, 1], [1, 1, 1], 0),
    ([3, 3], [1, 1, 1, 1], [2, 2], [1, 1], 0),
    ([2, 2], [0, 1, 1, 0], [2, 1], [2, 1], 1),
]


@pytest.mark.parametrize("kernel, pads, strides, dilations, ceil_mode", MAX_POOLS)
@pytest.mark.parametrize("indices", [False, True])
def test_max_pool_matches_onnxruntime(kernel: list[int], pads: list[int], strides: list[int], dilations: list[int],
                                      ceil_mode: int, indices: bool) -> None:
    shape = [2, 3, *[9 - i for i in range(len(kernel))]]
    x = np.random.default_rng(len(kernel)).standard_normal(shape).astype(np.float32)
    outputs = ["Y", "I"] if indices else ["Y"]
    node = helper.make_node("MaxPool", ["X"], outputs, kernel_shape=kernel, pads=pads, strides=strides,
                            dilations=dilations, ceil_mode=ceil_mode)
    model = helper.make_model(
        helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT if name == "Y" else onnx.TensorProto.INT64,
                                           None) for name in outputs],
        ),
        opset_imports=OPSETS[:1],
    )
    got = reference_evaluator(model).run(None, {"X": x})
    want = run_ort(model, {"X": x})
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        np.testing.assert_array_equal(g, w)
