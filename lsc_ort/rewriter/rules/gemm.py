"""``Gemm(A, B[, C])`` with a constant 2-D ``B`` → ``LSCMatMul(A', B_blob[, bias])``.

``Y = alpha * A' @ B' + beta * C`` maps onto the op contract as follows:

* ``alpha`` becomes LSCMatMul's ``alpha``; ``transB`` its ``transB`` (the blob holds ``B`` as
  stored); ``transA = 1`` inserts a ``Transpose`` of ``A``;
* a constant ``C`` broadcastable as ``[N]`` (shape ``[]``, ``[1]``, ``[N]``, ``[1, 1]`` or
  ``[1, N]``) becomes the bias ``beta * C`` (computed in float32, expanded to ``[N]``);
* any other ``C`` (``[M, N]``, ``[M, 1]``, computed at run time) is added by a following ``Add``,
  after a ``Mul`` by ``beta`` when ``beta != 1``;
* ``beta = 0`` drops ``C`` (as onnxruntime's Gemm does);
* a ``Relu`` or Gelu that is the only reader of the output (when no ``Add`` of ``C`` follows)
  becomes the op's ``activation``, as for MatMul.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from lsc_ort.ops import DOMAIN, MATMUL_OP
from lsc_ort.rewriter.graph import GraphContext
from lsc_ort.rewriter.rules.base import Decline, Match, RewriteRule, attributes, constant_weight, replacement
from lsc_ort.rewriter.rules.matmul import activation_after

GEMM_ATTRIBUTES = ("alpha", "beta", "transA", "transB", "broadcast")


def broadcastable_as_vector(shape: tuple[int, ...], n: int) -> bool:
    """Whether a tensor of ``shape`` broadcasts to ``[M, N]`` the way a ``[N]`` vector does."""
    if len(shape) > 2:
        return False
    if not shape:
        return True
    return all(d == 1 for d in shape[:-1]) and shape[-1] in (1, n)


class GemmRule(RewriteRule):
    """See the module docstring for how each attribute and the ``C`` input are folded."""

    name = "gemm"
    op_type = "Gemm"

    def check(self, node: onnx.NodeProto, ctx: GraphContext) -> Match | Decline:
        if not 2 <= len(node.input) <= 3 or len(node.output) != 1:
            return Decline("Gemm needs 2 or 3 inputs and 1 output")
        attrs = attributes(node)
        unknown = sorted(set(attrs) - set(GEMM_ATTRIBUTES))
        if unknown:
            return Decline(f"unknown Gemm attributes {unknown}")
        weight = constant_weight(node, 1, ctx, (2,), "B")
        if isinstance(weight, Decline):
            return weight
        trans_a = int(attrs.get("transA", 0)) != 0
        trans_b = int(attrs.get("transB", 0)) != 0
        beta = float(attrs.get("beta", 1.0))
        n = weight.shape[0] if trans_b else weight.shape[1]
        c_name = node.input[2] if len(node.input) > 2 else ""
        c = ctx.constant(c_name)
        if not c_name or beta == 0.0:
            c_mode = "none"
        elif c is not None and c.dtype == weight.dtype and broadcastable_as_vector(c.shape, n):
            c_mode = "bias"
        else:
            c_mode = "add"
        after = activation_after(node, ctx) if c_mode != "add" else None
        activation, absorbs = after if after is not None else (None, ())
        return Match(
            weight,
            {
                "alpha": float(attrs.get("alpha", 1.0)),
                "beta": beta,
                "transA": trans_a,
                "transB": trans_b,
                "n": n,
                "c_mode": c_mode,
                "activation": activation,
            },
            absorbs=absorbs,
        )

    def rewrite(
        self, node: onnx.NodeProto, match: Match, blob: str, ctx: GraphContext
    ) -> list[onnx.NodeProto]:
        facts = match.facts
        label = node.name or node.output[0]
        nodes = []
        a = node.input[0]
        if facts["transA"]:
            transposed = ctx.fresh_name(f"{a}_transposed")
            nodes.append(
                helper.make_node(
                    "Transpose", [a], [transposed], name=ctx.fresh_name(f"{label}/transA"), perm=[1, 0]
                )
            )
            a = transposed
        inputs = [a, blob]
        if facts["c_mode"] == "bias":
            inputs.append(self._bias(node.input[2], facts["beta"], facts["n"], match, ctx))
        y = match.absorbs[-1].output[0] if match.absorbs else node.output[0]
        out = ctx.fresh_name(f"{y}_lsc_matmul") if facts["c_mode"] == "add" else y
        alpha = facts["alpha"] if facts["alpha"] != 1.0 else None
        nodes.append(
            replacement(
                node, MATMUL_OP, inputs, [out], DOMAIN, alpha=alpha, transB=1 if facts["transB"] else None,
                activation=facts["activation"],
            )
        )
        if facts["c_mode"] == "add":
            c = node.input[2]
            if facts["beta"] != 1.0:
                dtype = match.weight.dtype
                beta = ctx.add_initializer(f"{label}_beta", np.array(facts["beta"], dtype=dtype))
                scaled = ctx.fresh_name(f"{c}_times_beta")
                nodes.append(
                    helper.make_node("Mul", [c, beta], [scaled], name=ctx.fresh_name(f"{label}/beta"))
                )
                c = scaled
            nodes.append(helper.make_node("Add", [out, c], [y], name=ctx.fresh_name(f"{label}/C")))
        return nodes

    @staticmethod
    def _bias(c_name: str, beta: float, n: int, match: Match, ctx: GraphContext) -> str:
        """The name of a ``[N]`` initializer holding ``beta * C`` (``C`` itself when it already is)."""
        c = ctx.constant(c_name)
        if c is None:
            raise RuntimeError(f"C '{c_name}' is not a constant")  # check() made sure it is
        dtype = match.weight.dtype
        if beta == 1.0 and c.shape == (n,):
            return c_name
        key = ("gemm-bias", c_name, beta, n)
        if key not in ctx.memo:
            value = ctx.read(c).astype(np.float32)
            if beta != 1.0:
                value = np.float32(beta) * value
            bias = np.broadcast_to(value.reshape(-1), (n,)).astype(dtype)
            ctx.memo[key] = ctx.add_initializer(f"{c_name}_lsc_bias", bias)
        return str(ctx.memo[key])
