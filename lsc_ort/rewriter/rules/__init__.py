"""The rewrite rules, one per module, and the default list the pass applies.

Adding a rule: write a module with a :class:`~lsc_ort.rewriter.rules.base.RewriteRule` subclass
and add one line to :data:`DEFAULT_RULES`.
"""

from __future__ import annotations

from lsc_ort.rewriter.rules.base import Decline, Match, RewriteRule
from lsc_ort.rewriter.rules.conv import ConvRule
from lsc_ort.rewriter.rules.gemm import GemmRule
from lsc_ort.rewriter.rules.matmul import MatMulRule

DEFAULT_RULES: tuple[RewriteRule, ...] = (
    MatMulRule(),
    GemmRule(),
    ConvRule(),
)
"""The rules :func:`lsc_ort.rewriter` applies, in order; a node is rewritten by the first rule
whose pattern it matches."""

__all__ = ["DEFAULT_RULES", "ConvRule", "Decline", "GemmRule", "MatMulRule", "Match", "RewriteRule"]
