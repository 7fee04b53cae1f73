"""The rule interface: a pattern (:meth:`RewriteRule.matches`), a check that says why it declines
(:meth:`RewriteRule.check`), and a rewrite (:meth:`RewriteRule.rewrite`)."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import onnx
from onnx import helper

from lsc_ort.rewriter.graph import ConstantValue, GraphContext, is_standard

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))
"""Weight element types the custom ops take."""


@dataclass(frozen=True)
class Decline:
    """A rule's answer when it does not apply to a node, with the reason (shown to users)."""

    reason: str


@dataclass(frozen=True)
class Match:
    """A rule's answer when it applies: the constant weight to encode, and rule-specific facts
    for :meth:`RewriteRule.rewrite`."""

    weight: ConstantValue
    facts: dict[str, Any] = field(default_factory=dict)
    absorbs: tuple[onnx.NodeProto, ...] = ()
    """Nodes after the matched one that its replacement also computes (a following Relu or bias
    Add); the pass removes them when it rewrites the node."""


class RewriteRule(abc.ABC):
    """Replaces one standard op whose weight is constant by its lsc-ort custom op.

    The rewrite pass calls :meth:`check` on each node :meth:`matches`; when it returns a
    :class:`Match` and the weight is worth encoding, it calls :meth:`rewrite` with the name of the
    uint8 initializer holding the weight's blob.
    """

    name: ClassVar[str]
    """Rule name, used in fired counts."""
    op_type: ClassVar[str]
    """The standard op this rule rewrites (also the name users select rules by)."""

    def matches(self, node: onnx.NodeProto) -> bool:
        """The pattern: a node of :attr:`op_type` in the default domain."""
        return node.op_type == self.op_type and is_standard(node)

    @abc.abstractmethod
    def check(self, node: onnx.NodeProto, ctx: GraphContext) -> Match | Decline:
        """Whether the rule applies to ``node``, reading only shapes and attributes."""

    @abc.abstractmethod
    def rewrite(
        self, node: onnx.NodeProto, match: Match, blob: str, ctx: GraphContext
    ) -> list[onnx.NodeProto]:
        """The nodes replacing ``node``, whose weight is now held by the initializer ``blob``."""


def constant_weight(
    node: onnx.NodeProto, index: int, ctx: GraphContext, ranks: tuple[int, ...], what: str
) -> ConstantValue | Decline:
    """The constant at input ``index`` of ``node`` if it is a float32/float16 tensor of a rank
    in ``ranks``; otherwise the reason why not."""
    name = node.input[index] if len(node.input) > index else ""
    weight = ctx.constant(name)
    if weight is None:
        return Decline(f"{what} (input {index} '{name}') is not a constant")
    if len(weight.shape) not in ranks:
        expected = " or ".join(str(r) for r in ranks)
        return Decline(f"{what} '{name}' has rank {len(weight.shape)}, the custom op needs rank {expected}")
    if weight.dtype not in SUPPORTED_DTYPES:
        return Decline(
            f"{what} '{name}' is {weight.dtype_name}; the custom ops take float32 or float16 weights"
        )
    return weight


def single_output(node: onnx.NodeProto) -> bool:
    """Whether ``node`` has one output: its first, optional ones after it left unnamed (as in
    ``LayerNormalization`` listing ``y, "", ""``)."""
    return bool(node.output) and bool(node.output[0]) and not any(node.output[1:])


def sole_consumer(node: onnx.NodeProto, ctx: GraphContext, op_type: str) -> onnx.NodeProto | None:
    """The only node reading ``node``'s single output, if it is a standard ``op_type`` node that
    no other rewrite absorbed and the output is not a graph output; else None."""
    return sole_user(node.output[0], ctx, op_type) if single_output(node) else None


def sole_user(name: str, ctx: GraphContext, op_type: str) -> onnx.NodeProto | None:
    """The only node reading tensor ``name``, as :func:`sole_consumer` does for a node's output."""
    users = ctx.consumers(name)
    if len(users) != 1 or ctx.is_graph_output(name):
        return None
    user = users[0]
    if id(user) in ctx.claimed:
        return None
    return user if user.op_type == op_type and is_standard(user) and single_output(user) else None


def residual_add(
    node: onnx.NodeProto, ctx: GraphContext, broadcast: bool = False
) -> tuple[onnx.NodeProto, str] | None:
    """The ``Add`` (or two-input ``Sum``) that is the only consumer of ``node``'s output ``y`` and
    adds a tensor ``z`` of ``y``'s own known shape (a residual connection), and that tensor; else
    None. With ``broadcast``, ``z`` may instead have any shape that can broadcast with ``y``'s
    and ends in ``y``'s known last dim (the op broadcasts at run time: dims that differ in name
    may still be equal, or 1)."""
    y = node.output[0]
    add = sole_consumer(node, ctx, "Add") or sole_consumer(node, ctx, "Sum")
    if add is None or len(add.input) != 2 or add.input[0] == add.input[1]:
        return None
    z = add.input[1] if add.input[0] == y else add.input[0]
    y_shape, z_shape = ctx.shape(y), ctx.shape(z)
    if y_shape is None or z_shape is None:
        return None
    if y_shape == z_shape and ctx.shape(add.output[0]) == y_shape:
        return add, z
    if not broadcast or not y_shape or not z_shape or not isinstance(y_shape[-1], int) or z_shape[-1] != y_shape[-1]:
        return None
    pairs = zip(reversed(y_shape[:-1]), reversed(z_shape[:-1]), strict=False)
    if any(isinstance(a, int) and isinstance(b, int) and a != b and 1 not in (a, b) for a, b in pairs):
        return None
    return add, z


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """The attributes of ``node`` as Python values."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def replacement(
    node: onnx.NodeProto, op_type: str, inputs: list[str], outputs: list[str], domain: str, **attrs: Any
) -> onnx.NodeProto:
    """A node taking ``node``'s place: same name, doc string and metadata."""
    new = helper.make_node(
        op_type,
        inputs,
        outputs,
        name=node.name or None,
        domain=domain,
        **{k: v for k, v in attrs.items() if v is not None},
    )
    if node.doc_string:
        new.doc_string = node.doc_string
    if hasattr(node, "metadata_props"):
        new.metadata_props.extend(node.metadata_props)
    return new
