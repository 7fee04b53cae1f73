"""Scaled dot-product attention fused into one ``LSCAttention`` node (contract in
:mod:`lsc_ort.ops`).

Exporters write the core of each attention layer as

``MatMul(Q, K) → [Div(·, c) | Mul(·, c)] → [Add(·, bias)] → Softmax(last axis) → MatMul(·, V)``

with ``Q [B, N, S, H]``, ``K [B, N, H, T]`` (keys already transposed), ``V [B, N, T, Hv]`` (or all
of rank 3), ``c`` a scalar constant and ``bias`` an additive mask. onnxruntime runs that as four
ops over a ``[B, N, S, T]`` score tensor; ``LSCAttention`` keeps each block of query rows' scores in
the cache and runs the heads in parallel (MiniLM-L3's three layers at 128 tokens: about 440 →
290 us each, 1 thread). :func:`find_attention` takes a chain only when every tensor in it is
float32, read by nothing else and not a graph output, the ranks are known and match, and the
bias cannot widen the scores as far as the shapes show (:func:`_may_broadcast_into`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from lsc_ort.ops import ATTENTION_OP, DOMAIN
from lsc_ort.rewriter.graph import GraphContext, is_standard
from lsc_ort.rewriter.rules.base import attributes, replacement, sole_consumer

_FLOAT = onnx.TensorProto.FLOAT


@dataclass(frozen=True)
class AttentionMatch:
    """One attention chain: its nodes in graph order (the last is ``MatMul(P, V)``, whose place
    and output the fused node takes) and the fused node's inputs and scale."""

    nodes: tuple[onnx.NodeProto, ...]
    q: str
    k: str
    v: str
    bias: str
    scale: float


def _scale(node: onnx.NodeProto, x: str, ctx: GraphContext) -> float | None:
    """The factor ``Div(x, c)`` or ``Mul(x, c)`` applies, for a finite float32 scalar ``c`` (non-zero
    for ``Div``); None otherwise."""
    if len(node.input) != 2 or x not in node.input or node.input[0] == node.input[1]:
        return None
    other = node.input[1] if node.input[0] == x else node.input[0]
    if node.op_type == "Div" and node.input[0] != x:
        return None
    constant = ctx.constant(other)
    if constant is None or constant.tensor.data_type != _FLOAT or int(np.prod(constant.shape)) != 1:
        return None
    c = np.float32(ctx.read(constant).reshape(-1)[0])
    if not np.isfinite(c) or (node.op_type == "Div" and c == 0):
        return None
    scale = np.float32(1) / c if node.op_type == "Div" else c
    return float(scale) if np.isfinite(scale) else None


def _softmax_on_last_axis(node: onnx.NodeProto, rank: int, ctx: GraphContext) -> bool:
    axis = attributes(node).get("axis")
    if axis is None:  # the default: -1 from opset 13, 1 (the flattened tail) before
        return ctx.opset() >= 13 or rank == 2
    return int(axis) in (-1, rank - 1)


def _may_broadcast_into(bias: tuple[int | str, ...], scores: tuple[int | str, ...]) -> bool:
    """Whether ``bias`` broadcasts to ``scores`` without widening it, as far as the shapes show: each
    bias dim is 1, or equal, or meets a fixed score dim above 1 (which a valid model matches). Two
    symbolic dims pass (shape inference often names the same dim twice); should the bias widen
    the scores at run time, ``LSCAttention`` fails naming the node."""
    for b, s in zip(reversed(bias), reversed(scores), strict=False):
        if b == 1 or b == s or (isinstance(s, int) and s > 1):
            continue
        if isinstance(s, int) or isinstance(b, int):  # s == 1 (or b > 1 against a symbol that may be 1)
            return False
    return True


def _float32(ctx: GraphContext, *names: str) -> bool:
    return all(ctx.elem_type(name) == _FLOAT for name in names)


def match_attention(first: onnx.NodeProto, ctx: GraphContext) -> AttentionMatch | None:
    """The chain starting at ``first`` (a ``MatMul(Q, K)``), or None."""
    if first.op_type != "MatMul" or not is_standard(first) or len(first.input) != 2 or id(first) in ctx.claimed:
        return None
    q, k = first.input
    q_shape, k_shape = ctx.shape(q), ctx.shape(k)
    if q_shape is None or k_shape is None or len(q_shape) not in (3, 4) or len(k_shape) != len(q_shape):
        return None
    rank = len(q_shape)
    nodes = [first]
    scores = first.output[0]
    scores_shape = ctx.shape(scores)
    if scores_shape is None or len(scores_shape) != rank:
        return None
    scale = 1.0
    following = sole_consumer(first, ctx, "Div") or sole_consumer(first, ctx, "Mul")
    if following is not None:
        found = _scale(following, scores, ctx)
        if found is None:
            return None
        scale, scores = found, following.output[0]
        nodes.append(following)
    bias = ""
    add = sole_consumer(nodes[-1], ctx, "Add")
    if add is not None:
        if len(add.input) != 2 or add.input[0] == add.input[1]:
            return None
        bias = add.input[1] if add.input[0] == scores else add.input[0]
        bias_shape = ctx.shape(bias)
        if bias_shape is None or len(bias_shape) > rank or not _may_broadcast_into(bias_shape, scores_shape):
            return None
        scores = add.output[0]
        nodes.append(add)
    softmax = sole_consumer(nodes[-1], ctx, "Softmax")
    if softmax is None or not _softmax_on_last_axis(softmax, rank, ctx):
        return None
    nodes.append(softmax)
    last = sole_consumer(softmax, ctx, "MatMul")
    if last is None or len(last.input) != 2 or last.input[0] != softmax.output[0]:
        return None
    v = last.input[1]
    v_shape = ctx.shape(v)
    if v_shape is None or len(v_shape) != rank or v == softmax.output[0]:
        return None
    nodes.append(last)
    if not _float32(ctx, q, k, v, last.output[0], *([bias] if bias else [])):
        return None
    return AttentionMatch(tuple(nodes), q, k, v, bias, scale)


def find_attention(ctx: GraphContext) -> list[AttentionMatch]:
    """Every attention chain of the main graph that :func:`match_attention` takes, no node in
    two."""
    matches: list[AttentionMatch] = []
    seen: set[int] = set()
    for node in ctx.graph.node:
        match = match_attention(node, ctx)
        if match is not None and not any(id(n) in seen for n in match.nodes):
            matches.append(match)
            seen.update(id(n) for n in match.nodes)
    return matches


def attention_node(match: AttentionMatch, last: onnx.NodeProto) -> onnx.NodeProto:
    """The ``LSCAttention`` node replacing ``match``, writing the output of its last ``MatMul``
    (``last``, that node or its named copy) and named as it."""
    inputs = [match.q, match.k, match.v] + ([match.bias] if match.bias else [])
    scale = match.scale if match.scale != 1.0 else None
    return replacement(last, ATTENTION_OP, inputs, [last.output[0]], DOMAIN, scale=scale)
