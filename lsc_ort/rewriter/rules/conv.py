"""``Conv(X, W[, B])`` with a constant 1-D or 2-D convolution weight → ``LSCConv(X, W_blob[, B])``.

What follows the Conv as the only consumer of its output is absorbed:

* ``Relu`` → ``activation="Relu"``;
* ``Add(Y, Z)`` (or a two-input ``Sum``) of a ``Z`` whose shape is known to equal ``Y``'s (a
  residual connection) → input ``Z``, and a ``Relu`` after that Add too.
"""

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
    residual_add,
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
        if relu is not None:
            return Match(weight, {"relu": True}, absorbs=(relu,))
        residual = residual_add(node, ctx)
        if residual is not None:
            add, z = residual
            relu = sole_consumer(add, ctx, "Relu")
            absorbs = (add, relu) if relu is not None else (add,)
            return Match(weight, {"relu": relu is not None, "residual": z}, absorbs=absorbs)
        return Match(weight)

    def rewrite(
        self, node: onnx.NodeProto, match: Match, blob: str, ctx: GraphContext
    ) -> list[onnx.NodeProto]:
        inputs = [node.input[0], blob, *node.input[2:]]
        if "residual" in match.facts:
            inputs += [""] * (3 - len(inputs)) + [match.facts["residual"]]
        output = match.absorbs[-1].output[0] if match.absorbs else node.output[0]
        activation = "Relu" if match.facts.get("relu") else None
        new = replacement(node, CONV_OP, inputs, [output], DOMAIN, activation=activation)
        new.attribute.extend(node.attribute)
        return [new]
