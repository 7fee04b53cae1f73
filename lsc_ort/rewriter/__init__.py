"""Graph rewriting: standard ops with sparse constant weights ↔ lsc-ort custom ops.

* :func:`rewrite` / :func:`compress_file` — MatMul / Gemm / Conv → ``LSCMatMul`` / ``LSCConv``;
* :func:`decompress` / :func:`decompress_file` — back to standard ops, bit-exact weights;
* :func:`layer_rows` — the per-layer report of any model.

The rules live one per module in :mod:`lsc_ort.rewriter.rules` and are collected in
:data:`~lsc_ort.rewriter.rules.DEFAULT_RULES`; file handling (external data, streaming, atomic
writes) is in :mod:`lsc_ort.rewriter.model_io`.
"""

from __future__ import annotations

from lsc_ort.rewriter.compress import (
    DEFAULT_OPS,
    RewriteError,
    RewriteResult,
    compress_file,
    rewrite,
    rewrite_graph,
    rewrite_model,
)
from lsc_ort.rewriter.decompress import (
    DecompressResult,
    decompress,
    decompress_file,
    decompress_graph,
    decompress_model,
    layer_rows,
)
from lsc_ort.rewriter.rules import DEFAULT_RULES, RewriteRule

__all__ = [
    "DEFAULT_OPS",
    "DEFAULT_RULES",
    "DecompressResult",
    "RewriteError",
    "RewriteResult",
    "RewriteRule",
    "compress_file",
    "decompress",
    "decompress_file",
    "decompress_graph",
    "decompress_model",
    "layer_rows",
    "rewrite",
    "rewrite_graph",
    "rewrite_model",
]
