"""Attention-head layouts around a MatMul, absorbed into ``LSCMatMul`` (``heads``,
``input_layout``, ``output_layout``; contract in :mod:`lsc_ort.ops`).

Exporters write multi-head attention as

* queries, keys, values: ``Y [B, S, N]`` → ``Reshape [B, S, H, D]`` → ``Transpose`` ``[0, 2, 1, 3]``
  (``[0, 2, 3, 1]`` for keys), and
* the heads back to tokens: ``C [B, H, S, D]`` → ``Transpose [0, 2, 1, 3]`` → ``Reshape [B, S, K]``
  → ``MatMul``,

with the ``Reshape`` target computed at run time from ``Shape`` of its own input
(``Concat(Unsqueeze(Gather(Shape(y), 0)), Unsqueeze(Gather(Shape(y), 1)), H, D)``), or given as a
constant (``[0, 0, H, D]``). A pattern is taken only when the target is proven to keep the batch
and sequence dims in place, nothing else reads the tensors in between, and the shape computation
serves only this ``Reshape`` (it is removed with it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from lsc_ort.rewriter.graph import GraphContext, is_standard

_OUTPUT_PERMS = {(0, 2, 1, 3): "BHSD", (0, 2, 3, 1): "BHDS"}
_INPUT_PERM = (0, 2, 1, 3)


@dataclass(frozen=True)
class HeadLayout:
    """A layout found around a MatMul: the attribute value, the heads, and the nodes it replaces
    (in graph order for the output side; the last is the node whose output the op now writes)."""

    layout: str
    heads: int
    nodes: tuple[onnx.NodeProto, ...]


def _attr(node: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def _ints(ctx: GraphContext, name: str) -> list[int] | None:
    """The values of a constant integer tensor of rank <= 1, else None."""
    constant = ctx.constant(name)
    if constant is None or len(constant.shape) > 1 or constant.dtype not in (np.dtype(np.int64), np.dtype(np.int32)):
        return None
    return [int(v) for v in ctx.read(constant).reshape(-1)]


def _axes(node: onnx.NodeProto, ctx: GraphContext) -> list[int] | None:
    """The ``axes`` of an ``Unsqueeze`` / ``Squeeze`` / reduction, as attribute (older opsets) or
    constant input; None when computed at run time."""
    given = _attr(node, "axes")
    if given is not None:
        return [int(a) for a in given.ints]
    return _ints(ctx, node.input[1]) if len(node.input) > 1 and node.input[1] else None


def _producer(ctx: GraphContext, name: str) -> onnx.NodeProto | None:
    """The standard main-graph node computing ``name``, unless another rewrite absorbed it."""
    producers = ctx.memo.get("heads:producers")
    if not isinstance(producers, dict):
        producers = {output: node for node in ctx.graph.node for output in node.output}
        ctx.memo["heads:producers"] = producers
    node = producers.get(name)
    return node if node is not None and is_standard(node) and id(node) not in ctx.claimed else None


# A Reshape target entry: ("dim", i) is dim i of the Reshape's input, ("const", v) a fixed
# size, ("infer", -1) the dim Reshape infers.
_Entry = tuple[str, int]


def _dim_of(part: onnx.NodeProto, source: str, ctx: GraphContext, chain: list[onnx.NodeProto]) -> int | None:
    """``i`` when ``part`` computes ``[Shape(source)[i]]``: ``Unsqueeze(Gather(Shape(source), i), 0)``
    or ``Gather(Shape(source), [i])``; the nodes go to ``chain``."""
    unsqueeze = None
    if part.op_type == "Unsqueeze":
        if _axes(part, ctx) != [0]:
            return None
        unsqueeze, gathered = part, _producer(ctx, part.input[0])
        if gathered is None:
            return None
        part = gathered
    if part.op_type != "Gather" or len(part.input) != 2:
        return None
    axis = _attr(part, "axis")
    index = ctx.constant(part.input[1])
    if (axis is not None and axis.i != 0) or index is None:
        return None
    values = _ints(ctx, part.input[1])
    # a scalar index under Unsqueeze, or a one-element index alone
    if values is None or len(values) != 1 or (len(index.shape) == 0) != (unsqueeze is not None):
        return None
    shape = _producer(ctx, part.input[0])
    if shape is None or shape.op_type != "Shape" or shape.input[0] != source or shape.attribute:
        return None
    chain.extend(n for n in (shape, part, unsqueeze) if n is not None)
    return values[0]


def _reshape_target(
    reshape: onnx.NodeProto, ctx: GraphContext
) -> tuple[list[_Entry], list[onnx.NodeProto]] | None:
    """The target of ``reshape`` entry by entry, and the nodes computing it (None if unproven)."""
    allowzero = _attr(reshape, "allowzero")
    if len(reshape.input) != 2 or (allowzero is not None and allowzero.i != 0):
        return None
    source, target = reshape.input
    chain: list[onnx.NodeProto] = []

    def constant_entries(values: list[int], start: int) -> list[_Entry] | None:
        entries: list[_Entry] = []
        for offset, v in enumerate(values):
            if v == 0:
                entries.append(("dim", start + offset))
            elif v == -1:
                entries.append(("infer", -1))
            elif v > 0:
                entries.append(("const", v))
            else:
                return None
        return entries

    values = _ints(ctx, target)
    if values is not None:
        entries = constant_entries(values, 0)
        return (entries, chain) if entries is not None else None
    concat = _producer(ctx, target)
    if concat is None or concat.op_type != "Concat" or (_attr(concat, "axis") or onnx.AttributeProto()).i != 0:
        return None
    chain.append(concat)
    entries = []
    for name in concat.input:
        values = _ints(ctx, name)
        if values is not None:
            found = constant_entries(values, len(entries))
            if found is None:
                return None
            entries += found
            continue
        part = _producer(ctx, name)
        dim = _dim_of(part, source, ctx, chain) if part is not None else None
        if dim is None:
            return None
        entries.append(("dim", dim))
    return entries, chain


def _split_target(
    reshape: onnx.NodeProto, rank: int, ctx: GraphContext
) -> tuple[list[_Entry], list[onnx.NodeProto]] | None:
    """The entries past dims 0 and 1 of ``reshape``'s target and the nodes computing it, when the
    target has ``rank`` entries, keeps dim 1 (and dim 0, or infers it) and infers at most one."""
    found = _reshape_target(reshape, ctx)
    if found is None:
        return None
    entries, chain = found
    if len(entries) != rank or entries[0] not in (("dim", 0), ("infer", -1)) or entries[1] != ("dim", 1):
        return None
    if entries.count(("infer", -1)) > 1:
        return None
    return entries[2:], chain


def _serves_only(chain: list[onnx.NodeProto], reshape: onnx.NodeProto, ctx: GraphContext) -> bool:
    """Whether ``reshape``'s input and its target's ``chain`` are read by nothing else (so both go
    with it)."""
    source = reshape.input[0]
    if ctx.is_graph_output(source) or not _only_within(chain, reshape, ctx):
        return False
    return all(u is reshape or any(u is c for c in chain) for u in ctx.consumers(source))


def _only_within(nodes: list[onnx.NodeProto], also: onnx.NodeProto, ctx: GraphContext) -> bool:
    """Whether every output of ``nodes`` is read only by ``nodes`` and ``also`` (none a graph
    output, none claimed by another rewrite)."""
    inside = {id(n) for n in nodes} | {id(also)}
    for node in nodes:
        if id(node) in ctx.claimed:
            return False
        for output in node.output:
            if ctx.is_graph_output(output) or any(id(u) not in inside for u in ctx.consumers(output)):
                return False
    return True


def _sole_reader(name: str, ctx: GraphContext, op_type: str, besides: list[onnx.NodeProto]) -> onnx.NodeProto | None:
    """The one ``op_type`` node reading ``name`` other than the nodes ``besides``."""
    others = [u for u in ctx.consumers(name) if all(u is not b for b in besides)]
    if len(others) != 1 or ctx.is_graph_output(name):
        return None
    node = others[0]
    ok = node.op_type == op_type and is_standard(node) and id(node) not in ctx.claimed and len(node.output) == 1
    return node if ok else None


def _unique(nodes: tuple[onnx.NodeProto, ...]) -> tuple[onnx.NodeProto, ...]:
    """``nodes`` without repeats (one ``Shape`` may feed both ``Gather`` nodes), in order."""
    return tuple({id(node): node for node in nodes}.values())


def _shape_readers(name: str, ctx: GraphContext) -> list[onnx.NodeProto]:
    return [u for u in ctx.consumers(name) if u.op_type == "Shape" and is_standard(u)]


def output_heads(last: onnx.NodeProto, n: int, ctx: GraphContext) -> HeadLayout | None:
    """``Transpose(Reshape(y, [B, S, H, n / H]))`` of the output ``y [B, S, n]`` of ``last``."""
    y = last.output[0]
    shape = ctx.shape(y)
    reshape = _sole_reader(y, ctx, "Reshape", _shape_readers(y, ctx))
    if shape is None or len(shape) != 3 or reshape is None or reshape.input[0] != y:
        return None
    found = _split_target(reshape, 4, ctx)
    if found is None:
        return None
    (kind, heads), depth = found[0]
    if kind != "const" or n % heads or depth not in (("const", n // heads), ("infer", -1)):
        return None
    transpose = _sole_reader(reshape.output[0], ctx, "Transpose", [])
    perm = _attr(transpose, "perm") if transpose is not None else None
    layout = _OUTPUT_PERMS.get(tuple(perm.ints)) if perm is not None else None
    if transpose is None or layout is None or not _serves_only(found[1], reshape, ctx):
        return None
    return HeadLayout(layout, heads, _unique((*found[1], reshape, transpose)))


def input_heads(node: onnx.NodeProto, k: int, ctx: GraphContext) -> HeadLayout | None:
    """``Reshape(Transpose(c, [0, 2, 1, 3]), [B, S, k])`` as the first input of ``node``, ``c`` of
    shape ``[B, H, S, k / H]``."""
    reshape = _producer(ctx, node.input[0])
    if reshape is None or reshape.op_type != "Reshape" or ctx.is_graph_output(reshape.output[0]):
        return None
    if [u for u in ctx.consumers(reshape.output[0])] != [node]:
        return None
    transpose = _producer(ctx, reshape.input[0])
    perm = _attr(transpose, "perm") if transpose is not None else None
    if transpose is None or transpose.op_type != "Transpose" or perm is None or tuple(perm.ints) != _INPUT_PERM:
        return None
    c_shape = ctx.shape(transpose.input[0])
    if c_shape is None or len(c_shape) != 4 or not isinstance(c_shape[1], int) or not isinstance(c_shape[3], int):
        return None
    heads, depth = c_shape[1], c_shape[3]
    if heads < 1 or heads * depth != k:
        return None
    found = _split_target(reshape, 3, ctx)
    if found is None or found[0][0] not in (("const", k), ("infer", -1)) or not _serves_only(found[1], reshape, ctx):
        return None
    return HeadLayout("BHSD", heads, _unique((transpose, *found[1], reshape)))
