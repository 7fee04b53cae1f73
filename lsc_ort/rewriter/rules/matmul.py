"""``MatMul(A, W)`` with a constant 2-D weight ``W [K, N]`` → ``LSCMatMul(A, W_blob)``."""

from __future__ import annotations

import onnx

from lsc_ort.ops import DOMAIN, MATMUL_OP
from lsc_ort.rewriter.graph import GraphContext
from lsc_ort.rewriter.rules.base import Decline, Match, RewriteRule, constant_weight, replacement


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
        return Match(weight)

    def rewrite(
        self, node: onnx.NodeProto, match: Match, blob: str, ctx: GraphContext
    ) -> list[onnx.NodeProto]:
        return [replacement(node, MATMUL_OP, [node.input[0], blob], [node.output[0]], DOMAIN)]
