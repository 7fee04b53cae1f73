"""``MatMul(A, W)`` with a constant 2-D weight ``W [K, N]`` → ``LSCMatMul(A, W_blob)``.

What follows the MatMul as the only consumer of its output is absorbed:

* an ``Add`` of a constant ``[N]`` bias → the op's bias;
* then an ``Add`` (or two-input ``Sum``) of a ``Z`` whose shape is known to equal the output's (a
  residual connection) → input ``Z``;
  or that broadcasts with it (batch dims renamed by a mask broadcast; the op broadcasts at run
  time);
* then a ``Relu`` → ``activation="Relu"``, or a Gelu → ``activation="Gelu"``: ONNX ``Gelu``
  (approximate ``"none"``), or the erf form exporters write, ``y * (1 + erf(y / sqrt(2))) * 0.5``
  (``Div`` by sqrt(2) or ``Mul`` by its inverse, ``Erf``, ``Add`` of 1, and two ``Mul``, one of
  them by 0.5, in either order);
* then a ``LayerNormalization`` over the last axis with constant ``[N]`` scale (and bias) →
  ``norm="LayerNorm"``, inputs ``norm_scale`` and ``norm_bias``;

and, around it, the attention-head ``Reshape`` + ``Transpose`` pairs
(:mod:`lsc_ort.rewriter.rules.heads`): heads back to tokens before ``A`` → ``input_layout``,
tokens to heads after the output (when there is neither a residual nor a norm) →
``output_layout``.
"""

from __future__ import annotations

import math
from typing import Any

import onnx

from lsc_ort.ops import DOMAIN, MATMUL_OP
from lsc_ort.rewriter.graph import GraphContext
from lsc_ort.rewriter.rules.base import (
    Decline,
    Match,
    RewriteRule,
    attributes,
    constant_weight,
    is_standard,
    replacement,
    residual_add,
    sole_consumer,
    sole_user,
)
from lsc_ort.rewriter.rules.heads import input_heads, output_heads


class MatMulRule(RewriteRule):
    """Only the second input can be the encoded weight; a constant first input is left alone
    (``LSCMatMul`` computes ``A @ W``, not ``W @ A``)."""

    name = "matmul"
    op_type = "MatMul"

    def check(self, node: onnx.NodeProto, ctx: GraphContext) -> Match | Decline:
        if len(node.input) != 2 or len(node.output) != 1:
            return Decline("MatMul needs exactly 2 inputs and 1 output")
        weight = constant_weight(node, 1, ctx, (2,), "the weight")
        if isinstance(weight, Decline):
            return weight
        facts: dict[str, Any] = {}
        absorbs: tuple[onnx.NodeProto, ...] = ()
        last = node
        add = sole_consumer(node, ctx, "Add")
        if add is not None and len(add.input) == 2 and add.input[0] != add.input[1]:
            bias_name = add.input[1] if add.input[0] == node.output[0] else add.input[0]
            bias = ctx.constant(bias_name)
            if bias is not None and bias.dtype == weight.dtype and bias.shape == (weight.shape[1],):
                facts["bias"] = bias_name
                absorbs, last = (add,), add
        residual = residual_add(last, ctx, broadcast=True)
        if residual is not None:
            facts["residual"] = residual[1]
            absorbs += (residual[0],)
            last = residual[0]
        activation = activation_after(last, ctx)
        if activation is not None:
            facts["activation"] = activation[0]
            absorbs += activation[1]
            last = activation[1][-1]
        k, n = weight.shape
        norm = layer_norm_after(last, n, weight.dtype, ctx)
        if norm is not None:
            facts.update(norm[1])
            absorbs += (norm[0],)
            last = norm[0]
        before = input_heads(node, k, ctx)
        after = output_heads(last, n, ctx) if residual is None and norm is None else None
        heads = {layout.heads for layout in (before, after) if layout is not None}
        if len(heads) == 1:  # (one H serves both layouts)
            facts["heads"] = heads.pop()
            if before is not None:
                facts["input_layout"] = before.layout
                absorbs = before.nodes + absorbs
            if after is not None:
                facts["output_layout"] = after.layout
                absorbs += after.nodes
                last = after.nodes[-1]
        facts["output"] = last.output[0]
        return Match(weight, facts, absorbs=absorbs)

    def rewrite(
        self, node: onnx.NodeProto, match: Match, blob: str, ctx: GraphContext
    ) -> list[onnx.NodeProto]:
        source = match.absorbs[0].input[0] if "input_layout" in match.facts else node.input[0]
        optional = ("bias", "residual", "norm_scale", "norm_bias")
        inputs = [source, blob, *(match.facts.get(key, "") for key in optional)]
        while not inputs[-1]:
            inputs.pop()
        output = match.facts["output"]
        keys = ("activation", "heads", "input_layout", "output_layout", "norm", "epsilon")
        return [replacement(node, MATMUL_OP, inputs, [output], DOMAIN, **{key: match.facts.get(key) for key in keys})]


def _scalar(ctx: GraphContext, name: str) -> float | None:
    """The value of a constant scalar (or one-element tensor), else None."""
    constant = ctx.constant(name)
    if constant is None or math.prod(constant.shape) != 1:
        return None
    return float(ctx.read(constant).reshape(-1)[0])


def _other(node: onnx.NodeProto, name: str) -> str | None:
    """The input of a two-input ``node`` that is not ``name`` (None unless exactly one is)."""
    if len(node.input) != 2 or (node.input[0] == name) == (node.input[1] == name):
        return None
    return node.input[1] if node.input[0] == name else node.input[0]


def _is(value: float | None, expected: float) -> bool:
    return value is not None and math.isclose(value, expected, rel_tol=1e-6)


def layer_norm_after(
    node: onnx.NodeProto, n: int, dtype: Any, ctx: GraphContext
) -> tuple[onnx.NodeProto, dict[str, Any]] | None:
    """The ``LayerNormalization`` that is the only consumer of ``node``'s output, over its last
    axis in float32 (``stash_type`` 1), with a finite ``epsilon`` >= 0 and constant scale (and
    bias) of shape ``[n]`` and ``dtype``, and its facts; else None."""
    norm = sole_consumer(node, ctx, "LayerNormalization")
    if norm is None or norm.input[0] != node.output[0] or not 2 <= len(norm.input) <= 3:
        return None
    attrs = attributes(norm)
    shape = ctx.shape(node.output[0])
    axis = attrs.get("axis", -1)
    if not (axis == -1 or (shape is not None and axis == len(shape) - 1)) or attrs.get("stash_type", 1) != 1:
        return None
    epsilon = float(attrs.get("epsilon", 1e-5))
    if not math.isfinite(epsilon) or epsilon < 0:
        return None
    facts: dict[str, Any] = {"norm": "LayerNorm", "epsilon": epsilon}
    for key, name in zip(("norm_scale", "norm_bias"), norm.input[1:], strict=False):  # (the bias is optional)
        if not name:
            continue
        value = ctx.constant(name)
        if value is None or value.shape != (n,) or value.dtype != dtype:
            return None
        facts[key] = name
    return (norm, facts) if "norm_scale" in facts else None


def activation_after(node: onnx.NodeProto, ctx: GraphContext) -> tuple[str, tuple[onnx.NodeProto, ...]] | None:
    """The activation LSCMatMul can compute that is the only reader of ``node``'s output: ``"Relu"``
    and its node, or ``"Gelu"`` and the nodes :func:`gelu_after` finds; else None."""
    relu = sole_consumer(node, ctx, "Relu")
    if relu is not None:
        return "Relu", (relu,)
    gelu = gelu_after(node, ctx)
    return ("Gelu", gelu) if gelu is not None else None


def gelu_after(node: onnx.NodeProto, ctx: GraphContext) -> tuple[onnx.NodeProto, ...] | None:
    """The nodes computing Gelu of ``node``'s single output ``y`` and nothing else (the last
    gives Gelu(y)), or None: an ONNX ``Gelu`` with ``approximate="none"``, or the erf form."""
    gelu = sole_consumer(node, ctx, "Gelu")
    if gelu is not None:
        approximate = attributes(gelu).get("approximate", b"none")
        approximate = approximate.decode() if isinstance(approximate, bytes) else str(approximate)
        return (gelu,) if approximate == "none" else None
    if len(node.output) != 1 or ctx.is_graph_output(node.output[0]):
        return None
    y = node.output[0]
    users = ctx.consumers(y)
    if len(users) != 2 or any(id(u) in ctx.claimed or not is_standard(u) for u in users):
        return None

    def scales(u: onnx.NodeProto) -> bool:  # y / sqrt(2) or y * (1 / sqrt(2))
        factor = _scalar(ctx, _other(u, y) or "")
        if u.op_type == "Div":
            return u.input[0] == y and _is(factor, math.sqrt(2))
        return u.op_type == "Mul" and _is(factor, 1 / math.sqrt(2))

    scale = next((u for u in users if scales(u)), None)
    if scale is None:
        return None
    erf = sole_user(scale.output[0], ctx, "Erf")
    if erf is None:
        return None
    one = sole_user(erf.output[0], ctx, "Add")
    if one is None or not _is(_scalar(ctx, _other(one, erf.output[0]) or ""), 1.0):
        return None
    first = next((u for u in users if u is not scale), None)
    if first is None or first.op_type != "Mul" or len(first.output) != 1:
        return None
    second = sole_user(first.output[0], ctx, "Mul")
    if second is None:
        return None
    half, tail = _other(first, y), _other(second, first.output[0])
    if half == one.output[0] and _is(_scalar(ctx, tail or ""), 0.5) and sole_user(one.output[0], ctx, "Mul") is first:
        # (y * (1 + erf)) * 0.5
        return (scale, erf, one, first, second)
    if _is(_scalar(ctx, half or ""), 0.5) and tail == one.output[0] and sole_user(one.output[0], ctx, "Mul") is second:
        return (scale, erf, one, first, second)  # (y * 0.5) * (1 + erf)
    return None
