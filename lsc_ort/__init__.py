"""lsc-ort: store pruned neural-network weights in compressed, encoded form and run them from it.

Public API:

* :func:`encode`, :func:`decode`, :func:`inspect` — weight tensor <-> self-describing blob
  (format: :mod:`lsc_ort.format`, ``docs/blob-format.md``);
* :func:`available_codecs`, :func:`entropy_bound`;
* :data:`DOMAIN`, :func:`get_library_path`, :func:`session_options` — the ``LSCMatMul`` and
  ``LSCConv`` custom ops for onnxruntime (:mod:`lsc_ort.ops`);
* :func:`rewrite`, :func:`decompress` — models with sparse MatMul / Gemm / Conv weights to and
  from those ops (:mod:`lsc_ort.rewriter`); :func:`prune` — one-shot magnitude pruning
  (:mod:`lsc_ort.pruning`; ``method="mswu"`` prunes and unifies micro-structured blocks,
  :mod:`lsc_ort.mswu`, trained with ADMM by the optional :mod:`lsc_ort.train`);
  :func:`reference_evaluator` — run rewritten models with numpy (:mod:`lsc_ort.reference`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lsc_ort.api import decode, encode, inspect
from lsc_ort.codecs import available_codecs
from lsc_ort.entropy import entropy_bound
from lsc_ort.format import BlobFormatError
from lsc_ort.native import get_library_path, session_options
from lsc_ort.ops import DOMAIN

if TYPE_CHECKING:
    from lsc_ort.pruning import prune
    from lsc_ort.reference import reference_evaluator
    from lsc_ort.rewriter import decompress, rewrite

_LAZY = {
    "decompress": "lsc_ort.rewriter",
    "prune": "lsc_ort.pruning",
    "reference_evaluator": "lsc_ort.reference",
    "rewrite": "lsc_ort.rewriter",
}
"""Exports whose modules (onnx, onnx.reference) load on first use, keeping ``import lsc_ort`` light."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lsc_ort' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "DOMAIN",
    "BlobFormatError",
    "available_codecs",
    "decode",
    "decompress",
    "encode",
    "entropy_bound",
    "get_library_path",
    "inspect",
    "prune",
    "reference_evaluator",
    "rewrite",
    "session_options",
]
