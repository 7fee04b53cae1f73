"""Masked mean pooling of token embeddings as one ``MatMul`` with the mask (standard ops).

Sentence encoders end with ``sum(x * mask) / clip(sum(mask))`` over the tokens, which torch
exports as ``m = Cast(Expand(Unsqueeze(mask, -1), shape(x)))``, ``ReduceSum(Mul(x, m), axis 1)``
and ``ReduceSum(m, axis 1)``: two reductions over the token axis of ``[B, S, D]`` tensors, which
onnxruntime runs slowly (37–40 µs each for MiniLM-L3 at 128 tokens), and the shape computation
of the ``Expand``. :func:`find_mean_pooling` finds that pattern; :func:`pooling_nodes` computes the
same two sums as ``MatMul(Cast(mask)[B, 1, S], x)`` and ``ReduceSum`` of the mask, expanded to
``[B, D]``. The ``Expand`` target must be proven to be ``Shape(x)``: the ``Shape`` node itself, or
the chain torch writes for ``expand(x.size())`` (``Reshape(Concat(Unsqueeze(Gather(Shape(x), i))))``
under a ``Where`` that replaces ``-1`` entries, which a shape has none of).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper

from lsc_ort.rewriter.graph import GraphContext, is_standard
from lsc_ort.rewriter.rules.base import attributes
from lsc_ort.rewriter.rules.heads import _axes, _dim_of, _ints, _producer

_FLOAT = onnx.TensorProto.FLOAT


@dataclass(frozen=True)
class PoolingMatch:
    """One masked sum: ``x [B, S, D]``, ``mask [B, S]``, the two sums' output names (``[B, D]``)
    and the nodes that go: the ``Mul`` and both ``ReduceSum`` first, then the nodes of the mask
    and shape chains that serve only them."""

    x: str
    mask: str
    weighted_sum: str
    count: str
    nodes: tuple[onnx.NodeProto, ...]


def _is_shape_of(name: str, x: str, rank: int, ctx: GraphContext, chain: list[onnx.NodeProto]) -> bool:
    """Whether tensor ``name`` is proven to equal ``Shape(x)``; its nodes go to ``chain``."""
    node = _producer(ctx, name)
    if node is None:
        return False
    if node.op_type == "Shape":
        chain.append(node)
        return node.input[0] == x and not node.attribute
    if node.op_type == "Where" and len(node.input) == 3:
        # Where(Equal(r, Mul(c, -1)), c, r) with c = ConstantOfShape(Shape(r)) of a value >= 0:
        # it replaces entries of r equal to -value, which a shape (>= 0) has none of, unless 0.
        equal, fill, r = (_producer(ctx, i) for i in node.input)
        if equal is None or fill is None or equal.op_type != "Equal" or fill.op_type != "ConstantOfShape":
            return False
        value = attributes(fill).get("value")
        fill_value = onnx.numpy_helper.to_array(value).reshape(-1) if value is not None else np.zeros(1)
        negated = _producer(ctx, equal.input[1]) if len(equal.input) == 2 else None
        factor = _ints(ctx, negated.input[1]) if negated is not None and negated.op_type == "Mul" else None
        if (fill_value.size != 1 or fill_value[0] <= 0 or negated is None or factor != [-1]
                or negated.input[0] != node.input[1] or equal.input[0] != node.input[2]):
            return False
        of = _producer(ctx, fill.input[0]) if fill.input else None
        if of is None or of.op_type != "Shape" or of.input[0] != node.input[2] or of.attribute:
            return False  # (c must have r's shape, or the Where would broadcast it wider)
        chain.extend([node, equal, negated, fill, of])
        return r is not None and _is_shape_of(node.input[2], x, rank, ctx, chain)
    if node.op_type == "Reshape" and _ints(ctx, node.input[1]) == [-1]:
        concat = _producer(ctx, node.input[0])
        if concat is None or concat.op_type != "Concat" or len(concat.input) != rank:
            return False
        chain.extend([node, concat])
        for i, part in enumerate(concat.input):
            produced = _producer(ctx, part)
            if produced is None or _dim_of(produced, x, ctx, chain) != i:
                return False
        return True
    return False


def _removable(candidates: list[onnx.NodeProto], replaced: list[onnx.NodeProto],
               ctx: GraphContext) -> list[onnx.NodeProto]:
    """The ``candidates`` whose every output is read only by ``replaced`` or by other removable
    candidates (and is no graph output), found by dropping the others until none is left."""
    kept = {id(n): n for n in candidates}
    inside = {id(n) for n in replaced}
    changed = True
    while changed:
        changed = False
        for key, node in list(kept.items()):
            for output in node.output:
                readers = ctx.consumers(output)
                if ctx.is_graph_output(output) or any(id(u) not in kept and id(u) not in inside for u in readers):
                    del kept[key]
                    changed = True
                    break
    return list(kept.values())


def match_mean_pooling(mul: onnx.NodeProto, ctx: GraphContext) -> PoolingMatch | None:
    """The masked sums around ``mul`` (``Mul(x, m)``), or None."""
    if mul.op_type != "Mul" or not is_standard(mul) or len(mul.input) != 2 or id(mul) in ctx.claimed:
        return None
    for x, m in (mul.input, reversed(mul.input)):
        cast = _producer(ctx, m)
        if cast is None or cast.op_type != "Cast" or attributes(cast).get("to") != _FLOAT:
            continue
        expand = _producer(ctx, cast.input[0])
        if expand is None or expand.op_type != "Expand":
            continue
        unsqueeze = _producer(ctx, expand.input[0])
        if unsqueeze is None or unsqueeze.op_type != "Unsqueeze" or _axes(unsqueeze, ctx) not in ([-1], [2]):
            continue
        mask, x_shape = unsqueeze.input[0], ctx.shape(x)
        mask_shape = ctx.shape(mask)
        if x_shape is None or len(x_shape) != 3 or mask_shape is None or len(mask_shape) != 2:
            continue
        if ctx.elem_type(x) != _FLOAT or ctx.elem_type(mul.output[0]) not in (0, _FLOAT):
            continue
        chain: list[onnx.NodeProto] = []
        if not _is_shape_of(expand.input[1], x, 3, ctx, chain):
            continue
        sums = [u for u in ctx.consumers(mul.output[0])]
        counts = [u for u in ctx.consumers(cast.output[0]) if u is not mul]
        if len(sums) != 1 or len(counts) != 1 or ctx.is_graph_output(mul.output[0]):
            continue
        total, count = sums[0], counts[0]
        if not all(n.op_type == "ReduceSum" and is_standard(n) and len(n.output) == 1 for n in (total, count)):
            continue
        if any(_axes(n, ctx) not in ([1], [-2]) or attributes(n).get("keepdims", 1) != 0 for n in (total, count)):
            continue
        if count.input[0] != cast.output[0] or ctx.is_graph_output(cast.output[0]):
            continue
        if any(id(n) in ctx.claimed for n in (total, count)):
            continue
        replaced = [mul, total, count]
        gone = _removable([cast, expand, unsqueeze, *chain], replaced, ctx)
        nodes = tuple({id(n): n for n in [*replaced, *gone]}.values())
        return PoolingMatch(x, mask, total.output[0], count.output[0], nodes)
    return None


def find_mean_pooling(ctx: GraphContext) -> list[PoolingMatch]:
    """Every masked sum of the main graph that :func:`match_mean_pooling` takes."""
    return [m for m in (match_mean_pooling(n, ctx) for n in ctx.graph.node if n.op_type == "Mul") if m is not None]


def pooling_nodes(match: PoolingMatch, ctx: GraphContext) -> list[onnx.NodeProto]:
    """``sum_s x * mask`` as ``Squeeze(MatMul(Unsqueeze(Cast(mask), 1), x), 1)`` and the count
    ``sum_s mask`` expanded to the same ``[B, D]``, writing the two sums' original outputs."""
    opset = ctx.opset()
    base = match.weighted_sum

    def axes_node(op: str, data: str, axes: list[int], out: str, **attrs: Any) -> list[onnx.NodeProto]:
        if opset >= 13:
            axes_name = ctx.add_initializer(f"{base}_axes", np.array(axes, np.int64))
            return [helper.make_node(op, [data, axes_name], [out], **attrs)]
        return [helper.make_node(op, [data], [out], axes=axes, **attrs)]

    weights = ctx.fresh_name(f"{base}_mask")
    row = ctx.fresh_name(f"{base}_mask_row")
    product = ctx.fresh_name(f"{base}_product")
    shape = ctx.fresh_name(f"{base}_shape")
    counted = ctx.fresh_name(f"{base}_count")
    return [
        helper.make_node("Cast", [match.mask], [weights], to=_FLOAT),
        *axes_node("Unsqueeze", weights, [1], row),
        helper.make_node("MatMul", [row, match.x], [product]),
        *axes_node("Squeeze", product, [1], match.weighted_sum),
        *axes_node("ReduceSum", weights, [1], counted, keepdims=1),
        helper.make_node("Shape", [match.weighted_sum], [shape]),
        helper.make_node("Expand", [counted, shape], [match.count]),
    ]
