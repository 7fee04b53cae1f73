"""``MatMul(A, W)`` with a constant 2-D weight ``W [K, N]`` → ``LSCMatMul(A, W_blob)``; an ``Add``
of a constant ``[N]`` bias that is the MatMul output's only consumer becomes the op's bias."""

from __future__ import annotations

import onnx

from lsc_ort.ops import DOMAIN, MATMUL_OP
from lsc_ort.rewriter.graph import GraphContext
from lsc_ort.rewriter.rules.base import Decline, Match, RewriteRule, constant_weight, replacement, sole_consumer


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
        add = sole_consumer(node, ctx, "Add")
        if add is not None and len(add.input) == 2 and add.input[0] != add.input[1]:
            bias_name = add.input[1] if add.input[0] == node.output[0] else add.input[0]
            bias = ctx.constant(bias_name)
            if bias is not None and bias.dtype == weight.dtype and bias.shape == (weight.shape[1],):
                return Match(weight, {"bias": bias_name}, absorbs=(add,))
        return Match(weight)

    def rewrite(
        self, node: onnx.NodeProto, match: Match, blob: str, ctx: GraphContext
    ) -> list[onnx.NodeProto]:
        if match.absorbs:
            inputs = [node.input[0], blob, match.facts["bias"]]
            return [replacement(node, MATMUL_OP, inputs, [match.absorbs[0].output[0]], DOMAIN)]
        return [replacement(node, MATMUL_OP, [node.input[0], blob], [node.output[0]], DOMAIN)]
