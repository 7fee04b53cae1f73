"""Builders of one-node models for the custom ops and their float64 numpy references."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import lsc_ort

FLOAT = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float16): TensorProto.FLOAT16}


def graph_model(nodes: list[Any], inputs: list[Any], outputs: list[Any], initializers: list[Any],
                value_info: list[Any] | None = None) -> bytes:
    """A serialized model of ``nodes`` importing the standard and the lsc-ort domains."""
    graph = helper.make_graph(nodes, "op", inputs, outputs, initializers, value_info=value_info or [])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(lsc_ort.DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def _model(node: Any, inputs: list[Any], initializers: list[Any], elem: int) -> bytes:
    return graph_model([node], inputs, [helper.make_tensor_value_info("Y", elem, None)], initializers)


def blob_initializer(blob: bytes, name: str = "W") -> Any:
    return numpy_helper.from_array(np.frombuffer(blob, np.uint8).copy(), name)


def matmul_model(blob: bytes, bias: np.ndarray | None = None, dtype: Any = np.float32,
                 blob_as_input: bool = False, residual: bool = False, **attributes: Any) -> bytes:
    """One LSCMatMul node; with ``residual``, a graph input ``Z`` is its fourth input."""
    elem = FLOAT[np.dtype(dtype)]
    inputs = [helper.make_tensor_value_info("A", elem, None)]
    initializers = []
    if blob_as_input:
        inputs.append(helper.make_tensor_value_info("W", TensorProto.UINT8, None))
    else:
        initializers.append(blob_initializer(blob))
    names = ["A", "W"]
    if bias is not None:
        initializers.append(numpy_helper.from_array(bias.astype(dtype), "bias"))
    names.append("bias" if bias is not None else "")
    if residual:
        inputs.append(helper.make_tensor_value_info("Z", elem, None))
        names.append("Z")
    node = helper.make_node("LSCMatMul", names, ["Y"], domain=lsc_ort.DOMAIN, name="lsc_mm", **attributes)
    return _model(node, inputs, initializers, elem)


def conv_model(blob: bytes, bias: np.ndarray | None = None, dtype: Any = np.float32, residual: bool = False,
               **attributes: Any) -> bytes:
    """One LSCConv node; with ``residual``, a graph input ``Z`` is its fourth input."""
    elem = FLOAT[np.dtype(dtype)]
    initializers = [blob_initializer(blob)]
    names = ["X", "W"]
    if bias is not None:
        initializers.append(numpy_helper.from_array(bias.astype(dtype), "B"))
    names.append("B" if bias is not None else "")
    inputs = [helper.make_tensor_value_info("X", elem, None)]
    if residual:
        names.append("Z")
        inputs.append(helper.make_tensor_value_info("Z", elem, None))
    while names[-1] == "":
        names.pop()
    node = helper.make_node("LSCConv", names, ["Y"], domain=lsc_ort.DOMAIN, name="lsc_conv", **attributes)
    return _model(node, inputs, initializers, elem)


def attention_model(bias: bool = False, **attributes: Any) -> bytes:
    """One LSCAttention node reading graph inputs Q, K, V (and ``M``, the bias)."""
    names = ["Q", "K", "V", *(["M"] if bias else [])]
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in names]
    node = helper.make_node("LSCAttention", names, ["Y"], domain=lsc_ort.DOMAIN, name="lsc_attention", **attributes)
    return _model(node, inputs, [], TensorProto.FLOAT)


def reference_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray | None = None,
                        scale: float = 1.0) -> np.ndarray:
    """Softmax(scale * q @ k + bias) @ v in float64 (the row maximum subtracted)."""
    x = (q.astype(np.float64) @ k) * np.float32(scale)
    if bias is not None:
        x = x + bias
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v


def session(model: bytes, threads: int = 1) -> ort.InferenceSession:
    options = lsc_ort.session_options()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def dense_session(node: Any, initializers: list[Any], input_name: str) -> ort.InferenceSession:
    graph = helper.make_graph([node], "dense", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def assert_close(actual: np.ndarray, expected: np.ndarray, tolerance: float = 1e-4) -> None:
    """max |actual - expected| <= tolerance * (1 + |expected|), elementwise."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    error = np.abs(actual.astype(np.float64) - expected) / (1.0 + np.abs(expected))
    assert error.size == 0 or error.max() <= tolerance, f"max relative error {error.max():.3g}"


def conv_output_geometry(size: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int,
                         auto_pad: str) -> tuple[int, int, int]:
    extent = (kernel - 1) * dilation + 1
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = -(-size // stride)
        total = max(0, (out - 1) * stride + extent - size)
        begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        return out, begin, total - begin
    if auto_pad == "VALID":
        pad_begin = pad_end = 0
    return (size + pad_begin + pad_end - extent) // stride + 1, pad_begin, pad_end


def reference_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, *, strides: list[int] | None = None,
                   dilations: list[int] | None = None, pads: list[int] | None = None, group: int = 1,
                   auto_pad: str = "NOTSET", kernel_shape: list[int] | None = None) -> np.ndarray:
    """ONNX Conv in float64 for 1-D and 2-D inputs (NCHW)."""
    del kernel_shape
    one_d = x.ndim == 3
    if one_d:
        x, w = x[:, :, None, :], w[:, :, None, :]
        strides = [1, *(strides or [1])]
        dilations = [1, *(dilations or [1])]
        pads = [0, pads[0], 0, pads[1]] if pads else None
    strides, dilations, pads = strides or [1, 1], dilations or [1, 1], pads or [0, 0, 0, 0]
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh, pt, pb = conv_output_geometry(h, kh, strides[0], dilations[0], pads[0], pads[2], auto_pad)
    ow, pl, pr = conv_output_geometry(wd, kw, strides[1], dilations[1], pads[1], pads[3], auto_pad)
    padded = np.zeros((n, c, h + pt + pb + kh * dilations[0], wd + pl + pr + kw * dilations[1]))
    padded[:, :, pt:pt + h, pl:pl + wd] = x
    y = np.zeros((n, m, oh, ow))
    mg = m // group
    for g in range(group):
        xs = padded[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dilations[0]:i * dilations[0] + oh * strides[0]:strides[0],
                           j * dilations[1]:j * dilations[1] + ow * strides[1]:strides[1]]
                y[:, g * mg:(g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch,
                                                        w[g * mg:(g + 1) * mg, :, i, j].astype(np.float64))
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y[:, :, 0, :] if one_d else y
