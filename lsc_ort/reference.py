"""numpy reference implementations of the custom ops, for ``onnx.reference.ReferenceEvaluator``.

They decode the blob with :func:`lsc_ort.decode` and compute exactly as the contract in
:mod:`lsc_ort.ops` says, so rewritten models can be checked without the native library::

    from lsc_ort.reference import reference_evaluator
    outputs = reference_evaluator(model).run(None, {"x": x})
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from onnx.reference.ops.op_conv import _conv_implementation

from lsc_ort.api import decode, inspect
from lsc_ort.ops import CONV_ACTIVATIONS, DOMAIN

_FLOAT_INPUTS = (np.dtype(np.float32), np.dtype(np.float16))


def weight_values(blob: np.ndarray | bytes) -> np.ndarray:
    """The weight a blob stands for: the decoded array (bit-exact), or ``scale * q`` in float32
    for int8 codes ``q``."""
    weight = decode(blob)
    if weight.dtype == np.int8:
        return np.float32(inspect(blob)["scale"]) * weight.astype(np.float32)
    return weight


def decode_weight(blob: np.ndarray | bytes) -> np.ndarray:
    """The weight a blob stands for, in float32 (the ops compute in float32)."""
    return weight_values(blob).astype(np.float32, copy=False)


def _check_float(name: str, op: str, value: np.ndarray) -> None:
    if value.dtype not in _FLOAT_INPUTS:
        raise TypeError(f"{op}: input {name} must be float32 or float16, got {value.dtype}")


class LSCMatMul(OpRun):
    """``Y = alpha * (A @ W) + bias``, computed in float32; ``Y`` has ``A``'s dtype."""

    op_domain = DOMAIN

    def _run(
        self,
        A: np.ndarray,
        W_blob: np.ndarray,
        bias: np.ndarray | None = None,
        alpha: float | None = None,
        transB: int | None = None,
    ) -> tuple[np.ndarray]:
        _check_float("A", "LSCMatMul", A)
        alpha = 1.0 if alpha is None else float(alpha)
        trans_b = 0 if transB is None else int(transB)
        if trans_b not in (0, 1):
            raise ValueError(f"LSCMatMul: attribute transB must be 0 or 1, got {trans_b}")
        weight = decode_weight(W_blob)
        if weight.ndim != 2:
            raise ValueError(
                f"LSCMatMul: the weight blob holds a tensor of rank {weight.ndim}; a 2-D matrix is needed"
            )
        if trans_b:
            weight = weight.T
        if A.ndim < 1 or A.shape[-1] != weight.shape[0]:
            raise ValueError(
                f"LSCMatMul: A has shape {list(A.shape)} but the weight is "
                f"{weight.shape[0]}x{weight.shape[1]}"
            )
        y = np.matmul(A.astype(np.float32, copy=False), weight)
        if alpha != 1.0:
            y = np.float32(alpha) * y
        if bias is not None:
            _check_float("bias", "LSCMatMul", bias)
            if bias.shape != (weight.shape[1],):
                raise ValueError(
                    f"LSCMatMul: bias has shape {list(bias.shape)}, expected [{weight.shape[1]}]"
                )
            y = y + bias.astype(np.float32, copy=False)
        return (np.asarray(y, dtype=np.float32).astype(A.dtype, copy=False),)


class LSCConv(OpRun):
    """ONNX ``Conv`` (1-D and 2-D) with the decoded weight, computed in float32 by
    ``onnx.reference``'s Conv implementation, plus the residual ``Z``, then the ``activation``;
    ``Y`` has ``X``'s dtype."""

    op_domain = DOMAIN

    def _run(
        self,
        X: np.ndarray,
        W_blob: np.ndarray,
        B: np.ndarray | None = None,
        Z: np.ndarray | None = None,
        auto_pad: str | None = None,
        dilations: list[int] | None = None,
        group: int | None = None,
        kernel_shape: list[int] | None = None,
        pads: list[int] | None = None,
        strides: list[int] | None = None,
        activation: str | None = None,
    ) -> tuple[np.ndarray]:
        _check_float("X", "LSCConv", X)
        act = "" if activation is None else activation
        if isinstance(act, bytes):
            act = act.decode()
        if act not in CONV_ACTIVATIONS:
            raise ValueError(f"LSCConv: unknown activation {act!r}; supported: {CONV_ACTIVATIONS}")
        weight = decode_weight(W_blob)
        if weight.ndim not in (3, 4):
            raise ValueError(
                f"LSCConv: the weight blob holds a tensor of shape {list(weight.shape)}; "
                "1-D and 2-D convolutions (rank 3 or 4) are supported"
            )
        if X.ndim != weight.ndim:
            raise ValueError(
                f"LSCConv: X has shape {list(X.shape)} but the weight {list(weight.shape)} "
                f"needs X of rank {weight.ndim}"
            )
        if kernel_shape is not None and tuple(kernel_shape) != weight.shape[2:]:
            raise ValueError(
                f"LSCConv: kernel_shape {list(kernel_shape)} does not match the weight shape "
                f"{list(weight.shape)}"
            )
        pad_mode = "NOTSET" if auto_pad is None else auto_pad
        if isinstance(pad_mode, bytes):
            pad_mode = pad_mode.decode()
        bias = None if B is None else B.astype(np.float32, copy=False)
        y = _conv_implementation(
            X.astype(np.float32, copy=False),
            weight,
            bias,
            pad_mode,
            dilations,
            1 if group is None else int(group),
            kernel_shape,
            pads,
            strides,
        )
        y = np.asarray(y, dtype=np.float32)
        if Z is not None:
            if Z.shape != y.shape:
                raise ValueError(f"LSCConv: Z has shape {list(Z.shape)} but Y has shape {list(y.shape)}")
            y = y + Z.astype(np.float32, copy=False)
        if act == "Relu":
            y = np.where(y < 0, np.float32(0), y)  # NaN stays NaN
        return (y.astype(X.dtype, copy=False),)


NEW_OPS: tuple[type[OpRun], ...] = (LSCMatMul, LSCConv)
"""The reference ops, for ``ReferenceEvaluator(model, new_ops=NEW_OPS)``."""


def reference_evaluator(model: onnx.ModelProto | str | os.PathLike, **kwargs: Any) -> ReferenceEvaluator:
    """A ``ReferenceEvaluator`` of ``model`` (a ModelProto or a path, external data loaded) that
    runs ``LSCMatMul`` and ``LSCConv`` with the numpy reference ops.

    Args:
        model: the model to evaluate.
        **kwargs: passed to ``ReferenceEvaluator`` (e.g. ``verbose``).
    """
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(os.fspath(model))
    return ReferenceEvaluator(model, new_ops=list(NEW_OPS), **kwargs)
