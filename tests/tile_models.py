"""LSCMatMul's row-tile layout (``TILES``) in plain numpy, and chains of LSCMatMul nodes that hand
their results on in it, for the reference, decompress and TVM tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import lsc_ort
from tests.rewrite_fixtures import sparse

TILE_M = [1, 5, 64, 65, 130, 200]
"""Rows M of the tiled matrices: one row, a partial tile, one full tile, full tiles plus partial ones."""


def to_tiles(p: np.ndarray) -> np.ndarray:
    """``p [..., N]`` in the TILES layout, as the contract (lsc_ort.ops) writes it."""
    p2d = p.reshape(-1, p.shape[-1])
    return np.concatenate([p2d[t:t + 64].T.ravel() for t in range(0, len(p2d), 64)]).reshape(p.shape)


def from_tiles(a: np.ndarray) -> np.ndarray:
    """The plain tensor that ``a [..., K]`` in the TILES layout stores."""
    m, k = int(np.prod(a.shape[:-1])), a.shape[-1]
    flat, rows = a.ravel(), []
    for t in range(0, m, 64):
        r = min(64, m - t)
        rows.append(flat[t * k:(t + r) * k].reshape(k, r).T)
    return np.concatenate(rows).reshape(a.shape)


def leading(m: int, rank: int) -> tuple[int, ...]:
    """Leading dims of a rank-``rank`` A (2 or 3) with ``m`` rows: ``(m,)`` or ``(b, m / b)``."""
    if rank == 2:
        return (m,)
    b = next(d for d in (2, 5, 1) if m % d == 0)
    return (b, m // b)


@dataclass
class Chain:
    """LSCMatMul nodes ``l0 -> l1 -> ...``, each tensor between two of them in TILES."""

    model: onnx.ModelProto
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activations: list[str]
    heads: int
    input_layout: str
    output_layout: str

    def expected(self, x: np.ndarray) -> np.ndarray:
        """The plain chain of products in float64 numpy, with the outer layouts."""
        y = x.astype(np.float64)
        if self.input_layout == "BHSD":
            b, h, s, d = y.shape
            y = y.transpose(0, 2, 1, 3).reshape(b, s, h * d)
        for w, bias, activation in zip(self.weights, self.biases, self.activations, strict=True):
            y = y @ w.astype(np.float64) + bias
            if activation == "Relu":
                y = np.maximum(y, 0)
        if self.output_layout:
            b, s, n = y.shape
            perm = (0, 2, 1, 3) if self.output_layout == "BHSD" else (0, 2, 3, 1)
            y = y.reshape(b, s, self.heads, n // self.heads).transpose(perm)
        return y


def tile_chain(x_shape: Sequence[int | str], dims: Sequence[int], *, input_layout: str = "",
               output_layout: str = "", heads: int = 0, seed: int = 0) -> Chain:
    """``len(dims) - 1`` LSCMatMul nodes ``l0, l1, ...`` of weights ``dims[i] x dims[i + 1]`` (bias,
    Relu on all but the last) from graph input ``x`` to graph output ``y``; every tensor between
    two of them is written and read in TILES; the first reads ``x`` in ``input_layout``, the last
    writes ``y`` in ``output_layout`` (with ``heads``)."""
    nodes, inits, weights, biases, activations = [], [], [], [], []
    count = len(dims) - 1
    for i in range(count):
        w = sparse((dims[i], dims[i + 1]), 0.6, seed=seed + i)
        bias = np.linspace(-0.5, 0.5, dims[i + 1], dtype=np.float32)
        activation = "Relu" if i < count - 1 else ""
        inits += [numpy_helper.from_array(np.frombuffer(lsc_ort.encode(w, "csr"), np.uint8), f"w{i}_lsc_blob"),
                  numpy_helper.from_array(bias, f"b{i}")]
        layouts = {"input_layout": input_layout if i == 0 else "TILES",
                   "output_layout": output_layout if i == count - 1 else "TILES"}
        attrs: dict[str, object] = {k: v for k, v in layouts.items() if v}
        if "BHSD" in layouts.values() or "BHDS" in layouts.values():
            attrs["heads"] = heads
        if activation:
            attrs["activation"] = activation
        nodes.append(helper.make_node("LSCMatMul", ["x" if i == 0 else f"t{i - 1}", f"w{i}_lsc_blob", f"b{i}"],
                                      ["y" if i == count - 1 else f"t{i}"], domain=lsc_ort.DOMAIN, name=f"l{i}",
                                      **attrs))
        weights.append(w)
        biases.append(bias)
        activations.append(activation)
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(lsc_ort.DOMAIN, 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    return Chain(model, weights, biases, activations, heads, input_layout, output_layout)


def _attribute_dropped(node: onnx.NodeProto, name: str) -> None:
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept)


def unpaired_tile_models() -> dict[str, tuple[onnx.ModelProto, str, str]]:
    """Models with a TILES layout that has no partner: case -> (model, the node to blame, a regex of
    the problem)."""
    cases = {}
    reads_badly = "output_layout TILES has a reader that does not read it as TILES: "
    chain = tile_chain([2, 5, 12], (12, 15, 7))
    chain.model.graph.output.append(helper.make_tensor_value_info("t0", TensorProto.FLOAT, None))
    cases["graph-output"] = (chain.model, "l0", "output_layout TILES: its output 't0' is a graph output")
    chain = tile_chain([2, 5, 12], (12, 15, 7))
    chain.model.graph.node.append(helper.make_node("Relu", ["t0"], ["r"], name="r"))
    chain.model.graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, None))
    cases["standard-reader"] = (chain.model, "l0", reads_badly + r"node 'r' \(Relu\) reads 't0' \(input 0\)")
    chain = tile_chain([2, 5, 12], (12, 15, 7))
    _attribute_dropped(chain.model.graph.node[1], "input_layout")
    cases["plain-reader"] = (chain.model, "l0",
                             reads_badly + r"node 'l1' \(LSCMatMul\) reads 't0' \(input 0, input_layout ''\)")
    chain = tile_chain([2, 5, 12], (12, 15, 9, 15))
    chain.model.graph.node[2].input.append("t0")
    cases["residual-reader"] = (chain.model, "l0", reads_badly + r"node 'l2' \(LSCMatMul\) reads 't0' \(input 3\)")
    chain = tile_chain([2, 5, 12], (12, 15, 7))
    branch = helper.make_graph([helper.make_node("Identity", ["t0"], ["o"], name="inner")], "branch", [],
                               [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
    chain.model.graph.input.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))
    chain.model.graph.node.append(helper.make_node("If", ["c"], ["branched"], name="if", then_branch=branch,
                                                   else_branch=branch))
    chain.model.graph.output.append(helper.make_tensor_value_info("branched", TensorProto.FLOAT, None))
    cases["subgraph-reader"] = (chain.model, "l0", reads_badly + r"node 'if' \(If\) reads 't0' \(in a subgraph\)")
    chain = tile_chain([2, 5, 12], (12, 7), input_layout="TILES")
    cases["from-graph-input"] = (chain.model, "l0", "input_layout TILES reads A 'x', which is a graph input, not the "
                                 "output of an LSCMatMul with output_layout TILES")
    chain = tile_chain([2, 5, 12], (12, 15, 7))
    _attribute_dropped(chain.model.graph.node[0], "output_layout")
    cases["from-plain-output"] = (chain.model, "l1", r"input_layout TILES reads A 't0', which is the output of node "
                                  r"'l0' \(LSCMatMul\), not the output of an LSCMatMul with output_layout TILES")
    chain = tile_chain([2, 5, 12], (12, 15, 7))
    _attribute_dropped(chain.model.graph.node[0], "output_layout")
    chain.model.graph.node.insert(1, helper.make_node("Relu", ["t0"], ["t0r"], name="relu"))
    chain.model.graph.node[2].input[0] = "t0r"
    cases["from-standard-op"] = (chain.model, "l1", r"input_layout TILES reads A 't0r', which is the output of node "
                                 r"'relu' \(Relu\)")
    return cases
