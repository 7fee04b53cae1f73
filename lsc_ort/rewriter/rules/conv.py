"""``Conv(X, W[, B])`` with a constant 1-D or 2-D convolution weight → ``LSCConv(X, W_blob[, B])``;
a ``Relu`` that is the Conv output's only consumer is absorbed (``activation="Relu"``)."""

from __future__ import annotations

import onnx

from lsc_ort.ops import CONV_OP, DOMAIN
from lsc_ort.rewriter.graph import GraphContext
from lsc_ort.rewriter.rules.base import (
    Decline,
    Match,
    RewriteRule,
    attributes,
    constant_weight,
    replacement,
    sole_consumer,
)

CONV_ATTRIBUTES = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


class ConvRule(RewriteRule):
    """Weights of rank 3 (``[M, C/group, k]``) or 4 (``[M, C/group, kH, kW]``); the bias passes
    through unchanged and all Conv attributes are kept."""

    name = "conv"
    op_type = "Conv"

    def check(self, node: onnx.NodeProto, ctx: GraphContext) -> Match | Decline:
        if not 2 <= len(node.input) <= 3 or len(node.output) != 1:
            return Decline("Conv needs 2 or 3 inputs and 1 output")
        unknown = sorted(set(attributes(node)) - set(CONV_ATTRIBUTES))
        if unknown:
            return Decline(f"unknown Conv attributes {unknown}")
        weight = constant_weight(node, 1, ctx, (3, 4), "the weight")
        if isinstance(weight, Decline):
            return weight
        relu = sole_consumer(node, ctx, "Relu")
        return Match(weight, absorbs=(relu,) if relu is not None else ())

    def rewrite(
        self, node: onnx.NodeProto, match: Match, blob: str, ctx: GraphContext
    ) -> list[onnx.NodeProto]:
        inputs = [node.input[0], blob, *node.input[2:]]
        output = match.absorbs[0].output[0] if match.absorbs else node.output[0]
        activation = "Relu" if match.absorbs else None
        new = replacement(node, CONV_OP, inputs, [output], DOMAIN, activation=activation)
        new.attribute.extend(node.attribute)
        return [new]
