"""Shared helpers of the TVM tests: compile once per (model, target, shapes) in a test session."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import onnx
import pytest

tvm = pytest.importorskip("tvm", reason="Apache TVM is not installed (pip install 'lsc-ort[tvm]')")
tvm_schedules = pytest.importorskip("tvm_schedules")

_CACHE: dict[tuple[str, str, str], Any] = {}


def compiled(model: bytes | onnx.ModelProto, target: str = "cpu",
             shapes: Mapping[str, Sequence[int | str]] | None = None) -> Any:
    """``tvm_schedules.compile`` of ``model``, cached for the test session."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    key = (hashlib.sha256(data).hexdigest(), target, repr(sorted((shapes or {}).items())))
    if key not in _CACHE:
        _CACHE[key] = tvm_schedules.compile(onnx.load_from_string(data), target, shapes)
    return _CACHE[key]
