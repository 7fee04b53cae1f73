"""``from_onnx``: a rewritten ONNX model to a Relax ``IRModule``.

Standard ops go through TVM's own Relax ONNX importer. Each ``LSCMatMul`` / ``LSCConv`` node
becomes ``relax.call_tir`` of a TensorIR kernel (:mod:`tvm_schedules.schedules.cpu`, the
portable reference form) whose arguments are the activation, the
:class:`~tvm_schedules.layouts.ColumnLayout` arrays derived from the node's blob, and the bias;
the dense weight is never part of the module. Each ``LSCAttention`` node becomes the Relax ops of
its definition (``matmul``, ``multiply``, ``add``, ``softmax``, ``matmul``).
"""

from __future__ import annotations

import collections
import contextlib
import io
import math
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

import lsc_ort
from lsc_ort.ops import ATTENTION_OP, CONV_ACTIVATIONS, CONV_OP, DOMAIN, MATMUL_ACTIVATIONS, MATMUL_OP
from lsc_ort.reference import (
    HEAD_LAYOUTS,
    INPUT_LAYOUT_PERM,
    OUTPUT_LAYOUT_PERMS,
    attention_scale,
    matmul_head_layouts,
    matmul_norm,
)
from lsc_ort.rewriter.model_io import iter_graphs
from lsc_ort.rewriter.tile_pairs import tile_pair_problems
from tvm_schedules import _tvm
from tvm_schedules.kernels import ConvKernel, MatMulKernel
from tvm_schedules.layouts import LscImportError, conv_layout, matmul_layout, node_error

tvm = _tvm.require_tvm()
from tvm import relax, sym, tirx  # noqa: E402

from tvm_schedules.schedules import cpu  # noqa: E402

MATMUL_ATTRIBUTES = frozenset({"activation", "alpha", "transB", "heads", "input_layout", "output_layout", "norm",
                               "epsilon"})
CONV_ATTRIBUTES = frozenset({"activation", "auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"})
AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")
MAX_GEOMETRY = 1 << 10
"""Largest stride, dilation or pad accepted (a crafted model must not size a huge workspace)."""
_FLOAT_TYPES = ("float32", "float16")


def _label(node: onnx.NodeProto) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


@dataclass(frozen=True)
class LscNode:
    """What the converter of an LSC node needs from the ONNX graph: its label for messages and
    the shape of its activation input as onnx's shape inference sees it (``None``: unknown)."""

    label: str
    input_shape: tuple[int | str, ...] | None = None


def check_lsc_nodes(model: onnx.ModelProto) -> list[LscNode]:
    """Check every LSC node's domain, inputs and attribute names (and LSCMatMul's layouts, each
    ``TILES`` one paired in its graph: :func:`lsc_ort.rewriter.tile_pairs.tile_pair_problems`);
    return them in graph order, labelled by name (or first output for unnamed nodes).

    Raises:
        LscImportError: naming the op, the node and the problem.
    """
    found = []
    for graph in iter_graphs(model.graph):
        for node in graph.node:
            if node.op_type == ATTENTION_OP:
                _check_attention(node)
            if node.op_type not in (MATMUL_OP, CONV_OP):
                continue
            op, label = node.op_type, _label(node)
            if node.domain != DOMAIN:
                raise node_error(op, label, f"the op is in domain '{node.domain}', expected '{DOMAIN}'")
            most = 6 if op == MATMUL_OP else 4
            if not 2 <= len(node.input) <= most or len(node.output) != 1 or not node.input[1]:
                expected = ("(A, W_blob[, bias[, Z[, norm_scale[, norm_bias]]]])" if op == MATMUL_OP
                            else "(X, W_blob[, B[, Z]])")
                raise node_error(op, label, f"needs inputs {expected} and one output, got "
                                 f"{len(node.input)} input(s) and {len(node.output)} output(s)")
            known = MATMUL_ATTRIBUTES if op == MATMUL_OP else CONV_ATTRIBUTES
            unknown = sorted({a.name for a in node.attribute} - known)
            if unknown:
                raise node_error(op, label, f"unknown attribute(s) {unknown}; {op} takes {sorted(known)}")
            if op == MATMUL_OP:
                attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                _norm(attrs, [bool(name) for name in node.input], _head_layouts(attrs, label)[2], label)
            found.append(node)
        unpaired = tile_pair_problems(graph)
        if unpaired:  # a TILES pair computes the tensor between its nodes plain (_convert_matmul)
            _, node, problem = unpaired[0]
            raise node_error(MATMUL_OP, _label(node), problem)
    shapes = _activation_shapes(model)
    return [LscNode(_label(node), shapes.get(node.input[0])) for node in found]


def _check_attention(node: onnx.NodeProto) -> None:
    """``LSCAttention``'s domain, inputs, output and attributes, as the contract says."""
    label = _label(node)
    if node.domain != DOMAIN:
        raise node_error(ATTENTION_OP, label, f"the op is in domain '{node.domain}', expected '{DOMAIN}'")
    try:
        attention_scale(node)
    except ValueError as error:
        raise node_error(ATTENTION_OP, label, str(error)) from None


_SMALL_CONSTANT = 4096
"""Initializers up to this many bytes keep their values for shape inference (shapes, axes)."""


def _activation_shapes(model: onnx.ModelProto) -> dict[str, tuple[int | str, ...]]:
    """Shapes of the main graph's values by onnx's shape inference, on a stand-in graph: LSC
    nodes become the MatMul / Conv they compute (weights of the blobs' shapes, no data), large
    initializers become inputs of their shapes. Empty when inference fails."""
    graph = model.graph
    try:
        small, stubs = [], []
        blobs: dict[str, Any] = {t.name: t for t in graph.initializer}
        for tensor in graph.initializer:
            if tensor.ByteSize() <= _SMALL_CONSTANT:
                small.append(tensor)
            else:
                stubs.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
        constants = {n.output[0]: n.attribute[0].t for n in graph.node
                     if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
        nodes = []
        for node in graph.node:
            if node.op_type not in (MATMUL_OP, CONV_OP) or node.domain != DOMAIN:
                nodes.append(node)
                continue
            tensor = blobs.get(node.input[1]) or constants.get(node.input[1])
            if tensor is None:  # a weight given at run time: its shape is not known here
                raise KeyError(node.input[1])
            shape = list(lsc_ort.inspect(numpy_helper.to_array(tensor))["shape"])
            stub = f"{node.input[1]}::lsc_weight"
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == MATMUL_OP:
                if attrs.get("transB", 0):
                    shape = shape[::-1]
                nodes += _matmul_stand_in(node, stub, shape[1], attrs, small)
            else:
                attrs.pop("activation", None)  # neither it nor the residual changes the shape
                nodes.append(helper.make_node("Conv", [node.input[0], stub], list(node.output), **attrs))
            stubs.append(helper.make_tensor_value_info(stub, onnx.TensorProto.FLOAT, shape))
        stand_in = helper.make_graph(nodes, "shapes", [*graph.input, *stubs], list(graph.output), small,
                                     value_info=list(graph.value_info))
        opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
        inferred = onnx.shape_inference.infer_shapes(
            helper.make_model(stand_in, opset_imports=opsets, ir_version=model.ir_version), data_prop=True)
    except Exception:  # best effort: the importer's own shapes still apply
        return {}
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input]:
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                       for d in tensor_type.shape.dim)
    return shapes


def _matmul_stand_in(node: onnx.NodeProto, weight: str, n: int, attrs: dict[str, Any],
                     constants: list[Any]) -> list[onnx.NodeProto]:
    """Standard nodes of ``node``'s output shape: ``MatMul`` of the stand-in ``weight``, inside
    the ``Transpose`` / ``Reshape`` pairs of its head layouts (their shapes added to ``constants``;
    ``TILES`` keeps the plain shapes), then ``Add`` of the residual ``Z`` (it broadcasts)."""
    heads, layout_in, layout_out = _head_layouts(attrs, _label(node))
    a, y = node.input[0], node.output[0]
    nodes = []
    if layout_in in HEAD_LAYOUTS:
        constants.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), f"{y}::lsc_read_shape"))
        nodes += [helper.make_node("Transpose", [a], [f"{y}::lsc_tokens"], perm=list(INPUT_LAYOUT_PERM)),
                  helper.make_node("Reshape", [f"{y}::lsc_tokens", f"{y}::lsc_read_shape"], [f"{y}::lsc_read"])]
        a = f"{y}::lsc_read"
    if layout_out not in HEAD_LAYOUTS:
        residual = node.input[3] if len(node.input) > 3 else ""
        if not residual:
            return [*nodes, helper.make_node("MatMul", [a, weight], [y])]
        return [*nodes, helper.make_node("MatMul", [a, weight], [f"{y}::lsc_product"]),
                helper.make_node("Add", [f"{y}::lsc_product", residual], [y])]
    constants.append(numpy_helper.from_array(np.array([0, 0, heads, n // heads], np.int64), f"{y}::lsc_split_shape"))
    return [*nodes, helper.make_node("MatMul", [a, weight], [f"{y}::lsc_plain"]),
            helper.make_node("Reshape", [f"{y}::lsc_plain", f"{y}::lsc_split_shape"], [f"{y}::lsc_heads"]),
            helper.make_node("Transpose", [f"{y}::lsc_heads"], [y], perm=list(OUTPUT_LAYOUT_PERMS[layout_out]))]


# --- shapes --------------------------------------------------------------------------------------


def _shape(expr: Any, what: str, op: str, node: str) -> list[Any]:
    ty = expr.ty
    shape = getattr(ty, "shape", None)
    if shape is None or not hasattr(shape, "values"):
        raise node_error(op, node, f"{what} needs a known rank for TVM (give shape_dict)")
    return list(shape.values)


def _with_rank(bb: Any, expr: Any, node: LscNode) -> Any:
    """``expr``, cast to the shape onnx's shape inference found when TVM's importer lost its
    rank (dynamic reshapes): known dimensions fixed, the others fresh symbolic variables,
    checked at run time."""
    if expr is None or node.input_shape is None or getattr(getattr(expr, "ty", None), "shape", None) is not None:
        return expr
    if not hasattr(expr.ty, "dtype"):
        return expr
    dims = [d if isinstance(d, int) and d > 0 else tirx.Var(f"lsc_dim{i}", "int64")
            for i, d in enumerate(node.input_shape)]
    return bb.match_cast(expr, relax.TensorType(dims, str(expr.ty.dtype)))


def _static(dim: Any) -> int | None:
    return int(dim) if isinstance(dim, tirx.IntImm) else None


def _show(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(_static(d)) if _static(d) is not None else str(d) for d in shape) + "]"


def _dtype(expr: Any) -> str:
    return str(expr.ty.dtype)


def _float_input(expr: Any, what: str, op: str, node: str) -> str:
    dtype = _dtype(expr)
    if dtype not in _FLOAT_TYPES:
        raise node_error(op, node, f"input {what} must be float32 or float16, got {dtype}")
    return dtype


def _as_float32(bb: Any, expr: Any) -> Any:
    return expr if _dtype(expr) == "float32" else bb.emit(relax.op.astype(expr, "float32"))


def _blob(expr: Any, op: str, node: str) -> np.ndarray:
    value = getattr(expr, "value", None)
    if value is None or not hasattr(value, "numpy"):
        raise node_error(op, node, "the weight blob must be a constant (an initializer or Constant node) "
                         "to compile with TVM; a blob computed or fed at run time is not supported")
    return np.asarray(value.numpy())


def _vector(bb: Any, inputs: Sequence[Any], index: int, n: int, what: str, op: str, node: str) -> Any:
    """Input ``index`` of the op, a float vector ``[n]``, as float32 (zeros when absent)."""
    value = inputs[index] if len(inputs) > index else None
    if value is None:
        return relax.const(np.zeros(n, np.float32))
    _float_input(value, what, op, node)
    shape = _shape(value, what, op, node)
    if len(shape) != 1 or (_static(shape[0]) is not None and _static(shape[0]) != n):
        raise node_error(op, node, f"{what} has shape {_show(shape)}, expected [{n}]")
    return _as_float32(bb, value)


def _function_name(spec: MatMulKernel | ConvKernel) -> str:
    """One kernel per shape: nodes of one spec share it (their layouts are arguments)."""
    if isinstance(spec, MatMulKernel):
        alpha = "" if spec.alpha == 1.0 else "_alpha"
        return f"lsc_matmul_{spec.k}x{spec.n}{alpha}"
    return f"lsc_conv_{spec.out_channels}x{spec.channels // spec.group}x{spec.kernel[0]}x{spec.kernel[1]}"


# --- converters ----------------------------------------------------------------------------------


class _Converter:
    """An ``OnnxOpConverter``-style converter for one LSC op, labelling nodes for messages."""

    def __init__(self, op: str, nodes: collections.deque[LscNode], convert: Any) -> None:
        self.op, self.nodes, self.convert = op, nodes, convert

    def get_converter(self, opset: int) -> Any:
        del opset

        def impl(bb: Any, inputs: Sequence[Any], attrs: dict[str, Any], params: Any) -> Any:
            del params
            name = str(attrs.get("tvm_custom", {}).get("name") or "")
            node = self.nodes.popleft() if self.nodes else LscNode(name)
            if name and name != node.label:  # nodes of subgraphs are converted out of order
                node = LscNode(name)
            inputs = list(inputs)
            inputs[0] = _with_rank(bb, inputs[0], node)
            return self.convert(bb, inputs, {k: v for k, v in attrs.items() if k != "tvm_custom"}, node.label)

        return impl


class _AttentionConverter:
    """``LSCAttention`` as the Relax ops of its definition (``matmul``, ``multiply``, ``add``,
    ``softmax``, ``matmul``): TVM fuses and schedules them as it does the unfused graph."""

    def get_converter(self, opset: int) -> Any:
        del opset

        def impl(bb: Any, inputs: Sequence[Any], attrs: dict[str, Any], params: Any) -> Any:
            del params
            node = str(attrs.get("tvm_custom", {}).get("name") or "")
            q, k, v = inputs[0], inputs[1], inputs[2]
            bias = inputs[3] if len(inputs) > 3 else None
            for what, expr in (("Q", q), ("K", k), ("V", v), ("bias", bias)):
                if expr is not None and _dtype(expr) != "float32":
                    raise node_error(ATTENTION_OP, node, f"{what} is {_dtype(expr)}; the op takes float32")
            x = relax.op.matmul(q, k)
            scale = float(attrs.get("scale", 1.0))
            if scale != 1.0:
                x = relax.op.multiply(x, relax.const(scale, "float32"))
            if bias is not None:
                x = relax.op.add(x, bias)
            return relax.op.matmul(relax.op.nn.softmax(x, axis=-1), v)

        return impl


def _activation(attrs: Mapping[str, Any], supported: Sequence[str], op: str, node: str) -> str:
    """The op's ``activation`` attribute, one of ``supported``."""
    activation = attrs.get("activation", "")
    activation = activation.decode() if isinstance(activation, bytes) else str(activation)
    if activation not in supported:
        raise node_error(op, node, f"unsupported activation '{activation}'; expected one of {sorted(supported)}")
    return activation


def _head_layouts(attrs: Mapping[str, Any], node: str) -> tuple[int, str, str]:
    """``LSCMatMul``'s ``(heads, input_layout, output_layout)``, checked as the contract says."""
    try:
        return matmul_head_layouts(attrs.get("heads"), attrs.get("input_layout"), attrs.get("output_layout"))
    except ValueError as error:
        raise node_error(MATMUL_OP, node, str(error)) from None


def _norm(attrs: Mapping[str, Any], given: Sequence[bool], layout_out: str, node: str) -> tuple[str, float]:
    """``LSCMatMul``'s ``(norm, epsilon)``, checked as the contract says; ``given`` says which
    inputs the node has."""
    inputs = [*given, False, False, False, False]
    try:
        return matmul_norm(attrs.get("norm"), attrs.get("epsilon"), inputs[4], inputs[5], layout_out)
    except ValueError as error:
        raise node_error(MATMUL_OP, node, str(error)) from None


def _read_heads(bb: Any, a: Any, shape: list[Any], heads: int, k: int, node: str) -> tuple[Any, list[Any]]:
    """``A [B, H, S, K/H]`` of ``input_layout="BHSD"`` as the ``[B, S, K]`` matrix it stands for,
    and that shape (H and K/H checked at run time where they are symbolic)."""
    op = MATMUL_OP
    if len(shape) != 4:
        raise node_error(op, node, f"input_layout BHSD needs A of rank 4 [B, H, S, K/H], got shape {_show(shape)}")
    if k % heads:
        raise node_error(op, node, f"heads {heads} does not divide K = {k} (input_layout BHSD)")
    expected = [shape[0], tirx.IntImm("int64", heads), shape[2], tirx.IntImm("int64", k // heads)]
    if any(_static(shape[i]) is not None and _static(shape[i]) != _static(expected[i]) for i in (1, 3)):
        raise node_error(op, node, f"A has shape {_show(shape)} but input_layout BHSD with heads {heads} and a weight "
                         f"of K = {k} needs A of shape [B, {heads}, S, {k // heads}]")
    if any(_static(shape[i]) is None for i in (1, 3)):
        a = bb.match_cast(a, relax.TensorType(expected, _dtype(a)))
    tokens = bb.emit(relax.op.permute_dims(a, list(INPUT_LAYOUT_PERM)))
    read = [shape[0], shape[2], tirx.IntImm("int64", k)]
    return bb.emit(relax.op.reshape(tokens, read)), read


def _convert_matmul(bb: Any, inputs: Sequence[Any], attrs: dict[str, Any], node: str) -> Any:
    op = MATMUL_OP
    alpha = float(attrs.get("alpha", 1.0))
    trans_b = int(attrs.get("transB", 0))
    if trans_b not in (0, 1):
        raise node_error(op, node, f"attribute transB must be 0 or 1, got {trans_b}")
    if not math.isfinite(alpha):
        raise node_error(op, node, f"attribute alpha must be finite, got {alpha}")
    activation = _activation(attrs, MATMUL_ACTIVATIONS, op, node)
    heads, layout_in, layout_out = _head_layouts(attrs, node)
    a = inputs[0]
    dtype = _float_input(a, "A", op, node)
    layout = matmul_layout(_blob(inputs[1], op, node), bool(trans_b), node)
    k, n = layout.k, layout.n
    shape = _shape(a, "A", op, node)
    # TILES: check_lsc_nodes paired it, the tensor between the pair's nodes is computed plain
    if layout_in in HEAD_LAYOUTS:
        a, shape = _read_heads(bb, a, shape, heads, k, node)
    if not shape:
        raise node_error(op, node, "A must have rank >= 1, got a scalar")
    if _static(shape[-1]) is not None and _static(shape[-1]) != k:
        raise node_error(op, node, f"A has shape {_show(shape)} but the weight is {k}x{n}: "
                         f"A's last dimension must be {k}")
    residual = inputs[3] if len(inputs) > 3 else None
    if layout_out and residual is not None:
        raise node_error(op, node, f"a residual Z cannot be combined with output_layout {layout_out}")
    if layout_out in HEAD_LAYOUTS:
        if len(shape) != 3:
            read = " as read (after input_layout)" if layout_in else ""
            raise node_error(op, node, f"output_layout {layout_out} needs A{read} of rank 3 [B, S, K], got shape "
                             f"{_show(shape)}")
        if n % heads:
            raise node_error(op, node, f"heads {heads} does not divide N = {n} (output_layout {layout_out})")
    bias = _vector(bb, inputs, 2, n, "bias", op, node)
    norm, epsilon = _norm(attrs, [value is not None for value in inputs], layout_out, node)
    lead = shape[:-1]
    rows = lead[0] if len(lead) == 1 else tirx.IntImm("int64", 1)
    for dim in lead if len(lead) != 1 else ():
        rows = rows * dim
    spec = MatMulKernel(k=k, n=n, alpha=alpha)
    gvar = bb.add_func(cpu.matmul(spec, cpu.REFERENCE), _function_name(spec))
    a2 = _as_float32(bb, a)
    if len(shape) != 2:
        a2 = bb.emit(relax.op.reshape(a2, [rows, k]))
    args = [a2, *(relax.const(array) for array in layout.arrays()), bias]
    y = bb.emit(relax.call_tir(gvar, args, relax.TensorType([rows, n], "float32")))
    if len(shape) != 2:
        y = bb.emit(relax.op.reshape(y, [*lead, n]))
    y = _epilogue(bb, y, residual, activation, dtype, op, node, broadcast=True)
    if norm:  # LayerNorm (_norm checked: norm_scale given), in float32
        gamma = _vector(bb, inputs, 4, n, "norm_scale", op, node)
        beta = _vector(bb, inputs, 5, n, "norm_bias", op, node)
        y = bb.emit(relax.op.nn.layer_norm(y, gamma, beta, axes=[-1], epsilon=epsilon))
    if layout_out in HEAD_LAYOUTS:  # [B, S, N] -> [B, S, H, N/H] -> the layout
        y = bb.emit(relax.op.reshape(y, [*lead, heads, n // heads]))
        y = bb.emit(relax.op.permute_dims(y, list(OUTPUT_LAYOUT_PERMS[layout_out])))
    return y if dtype == "float32" else relax.op.astype(y, dtype)


def _ints(attrs: Mapping[str, Any], name: str, count: int, default: int, op: str, node: str,
          low: int) -> list[int]:
    value = attrs.get(name)
    if value is None:
        return [default] * count
    values = [int(v) for v in (value if isinstance(value, list | tuple) else [value])]
    if len(values) != count:
        raise node_error(op, node, f"attribute {name} needs {count} values, got {values}")
    if any(v < low or v > MAX_GEOMETRY for v in values):
        raise node_error(op, node, f"attribute {name} values must lie in [{low}, {MAX_GEOMETRY}], got {values}")
    return values


def _convert_conv(bb: Any, inputs: Sequence[Any], attrs: dict[str, Any], node: str) -> Any:
    op = CONV_OP
    x = inputs[0]
    dtype = _float_input(x, "X", op, node)
    wshape, layout = conv_layout(_blob(inputs[1], op, node), node)
    spatial = len(wshape) - 2
    out_channels, group_channels, kernel = wshape[0], wshape[1], list(wshape[2:])
    group = int(attrs.get("group", 1))
    if group < 1:
        raise node_error(op, node, f"group must be >= 1, got {group}")
    if out_channels % group:
        raise node_error(op, node, f"the weight has {out_channels} output channels, not divisible by group {group}")
    activation = _activation(attrs, CONV_ACTIVATIONS, op, node)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad not in AUTO_PADS:
        raise node_error(op, node, f"unsupported auto_pad '{auto_pad}'; expected one of {list(AUTO_PADS)}")
    kernel_shape = attrs.get("kernel_shape")
    if kernel_shape is not None and [int(v) for v in kernel_shape] != kernel:
        raise node_error(op, node, f"kernel_shape {[int(v) for v in kernel_shape]} does not match the weight "
                         f"shape {list(wshape)}")
    strides = _ints(attrs, "strides", spatial, 1, op, node, 1)
    dilations = _ints(attrs, "dilations", spatial, 1, op, node, 1)
    pads = _ints(attrs, "pads", 2 * spatial, 0, op, node, 0)
    shape = _shape(x, "X", op, node)
    if len(shape) != len(wshape):
        raise node_error(op, node, f"X has shape {_show(shape)} but the weight {list(wshape)} needs X of rank "
                         f"{len(wshape)}")
    channels = group_channels * group
    if _static(shape[1]) is not None and _static(shape[1]) != channels:
        raise node_error(op, node, f"X has {_static(shape[1])} channels but the weight {list(wshape)} with group "
                         f"{group} needs {channels}")
    if spatial == 1:  # a 1-D convolution is a 2-D one of height 1
        kernel, strides, dilations = [1, *kernel], [1, *strides], [1, *dilations]
        pads = [0, pads[0], 0, pads[1]]
        sizes = [tirx.IntImm("int64", 1), shape[2]]
    else:
        sizes = list(shape[2:])
    begin, end, out = [0, 0], [0, 0], []
    for d in range(2):
        extent = (kernel[d] - 1) * dilations[d] + 1
        size = sizes[d]
        static = _static(size)
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            if static is None:
                raise node_error(op, node, f"auto_pad {auto_pad} needs static spatial dimensions, X has shape "
                                 f"{_show(shape)}")
            count = -(-static // strides[d])
            total = max(0, (count - 1) * strides[d] + extent - static)
            begin[d] = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            end[d] = total - begin[d]
        elif auto_pad == "NOTSET":
            begin[d], end[d] = pads[d], pads[d + 2]
        if static is None:
            out.append(tirx.floordiv(size + (begin[d] + end[d] - extent), strides[d]) + 1)
            continue
        span = static + begin[d] + end[d] - extent
        if span < 0:
            raise node_error(op, node, f"X has shape {_show(shape)}, smaller than the dilated kernel "
                             f"({extent}) with its padding in dimension {d + len(wshape) - 2} of X")
        out.append(span // strides[d] + 1)
    bias = _vector(bb, inputs, 2, out_channels, "B", op, node)
    spec = ConvKernel(channels=channels, out_channels=out_channels, group=group,
                      kernel=(kernel[0], kernel[1]), strides=(strides[0], strides[1]),
                      dilations=(dilations[0], dilations[1]), pads=(begin[0], begin[1], end[0], end[1]))
    gvar = bb.add_func(cpu.conv(spec, cpu.REFERENCE), _function_name(spec))
    x4 = _as_float32(bb, x)
    if spatial == 1:
        x4 = bb.emit(relax.op.reshape(x4, [shape[0], shape[1], 1, shape[2]]))
    args = [x4, *(relax.const(array) for array in layout.arrays()), bias]
    y = bb.emit(relax.call_tir(gvar, args, relax.TensorType([shape[0], out_channels, *out], "float32")))
    if spatial == 1:
        y = bb.emit(relax.op.reshape(y, [shape[0], out_channels, out[1]]))
    y = _epilogue(bb, y, inputs[3] if len(inputs) > 3 else None, activation, dtype, op, node)
    return y if dtype == "float32" else relax.op.astype(y, dtype)


def _epilogue(bb: Any, y: Any, residual: Any, activation: str, dtype: str, op: str, node: str,
              broadcast: bool = False) -> Any:
    """``y`` (float32) plus the residual ``Z`` when given (of the op's type; exactly ``Y``'s
    shape, or with ``broadcast`` as :func:`_broadcast` says), then the activation, as the native
    ops apply them."""
    if residual is not None:
        if _float_input(residual, "Z", op, node) != dtype:
            raise node_error(op, node, f"Z is {_dtype(residual)} but the op computes {dtype}; the residual must "
                             "have Y's type")
        z_shape, y_shape = _shape(residual, "Z", op, node), _shape(y, "Y", op, node)
        z = _as_float32(bb, residual)
        if broadcast:
            y, z = _broadcast(bb, y, z, y_shape, z_shape, op, node)
        elif len(z_shape) != len(y_shape) or any(
                _static(a) is not None and _static(b) is not None and _static(a) != _static(b)
                for a, b in zip(z_shape, y_shape, strict=True)):
            raise node_error(op, node, f"Z has shape {_show(z_shape)} but Y has shape {_show(y_shape)}; "
                             "the residual must have Y's shape")
        y = bb.emit(relax.op.add(y, z))
    if activation == "Relu":  # max(y, 0) with NaN kept, as the native kernels do
        zero = relax.const(np.float32(0.0))
        y = bb.emit(relax.op.where(relax.op.less(y, zero), zero, y))
    elif activation == "Gelu":
        y = bb.emit(relax.op.nn.gelu(y))
    return y


def _broadcast(bb: Any, p: Any, z: Any, p_shape: list[Any], z_shape: list[Any], op: str,
               node: str) -> tuple[Any, Any]:
    """The product ``p [..., N]`` and a residual ``z`` of last dim ``N`` whose leading dims
    broadcast with ``p``'s (ONNX ``Add``), cast where Relax cannot infer the broadcast shape: a
    pair of dims neither of them statically 1 nor provably equal (distinct symbolic dims, a
    symbolic and a static one) is taken equal, to the static one if any, checked at run time (a
    1 there, which would broadcast, is a run-time error)."""
    n = _static(p_shape[-1])
    if not z_shape or _static(z_shape[-1]) not in (None, n):
        raise node_error(op, node, f"Z has shape {_show(z_shape)} but its last dimension must be N = {n}")
    shapes, cast = [list(p_shape), list(z_shape)], [False, False]
    analyzer = sym.Analyzer()
    for i in range(1, min(len(p_shape), len(z_shape)) + 1):
        dims = (p_shape[-i], z_shape[-i])
        static = (_static(dims[0]), _static(dims[1]))
        if 1 in static or analyzer.can_prove_equal(*dims):
            continue
        if None not in static:
            raise node_error(op, node, f"Z has shape {_show(z_shape)}, which does not broadcast with the product's "
                             f"shape {_show(p_shape)}")
        target = 1 if static[1] is not None else 0
        shapes[1 - target][-i], cast[1 - target] = dims[target], True
    p, z = (bb.match_cast(x, relax.TensorType(shape, "float32")) if on else x
            for x, shape, on in zip((p, z), shapes, cast, strict=True))
    return p, z


def _shape_dict(shape_dict: Mapping[str, Sequence[int | str]] | None) -> dict[str, list[Any]] | None:
    """TVM's shape dict, with each named (symbolic) dimension one shared ``int64`` variable."""
    if not shape_dict:
        return None
    symbols: dict[str, Any] = {}
    result = {}
    for name, dims in shape_dict.items():
        result[name] = [symbols.setdefault(d, tirx.Var(d, "int64")) if isinstance(d, str) else int(d)
                        for d in dims]
    return result


def from_onnx(model: onnx.ModelProto | str | os.PathLike[str],
              shape_dict: Mapping[str, Sequence[int | str]] | None = None) -> Any:
    """Import a model with ``LSCMatMul`` / ``LSCConv`` nodes into a Relax ``IRModule``.

    Args:
        model: a ModelProto or a path (external data is loaded); never modified.
        shape_dict: input name -> shape, for inputs whose shape the model leaves open; a
            dimension is an int or a name (symbolic, shared by the inputs that use it).

    Returns:
        A ``tvm.IRModule``: standard ops as TVM's ONNX importer converts them, each LSC node a
        ``call_tir`` of its kernel reading the weight's column layout (reference schedule;
        :func:`tvm_schedules.compile` schedules it for a target).

    Raises:
        LscImportError: a malformed blob, bad attributes or shapes, naming op and node.
    """
    from tvm.relax.frontend.onnx import from_onnx as tvm_from_onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(os.fspath(model))
    nodes = collections.deque(check_lsc_nodes(model))
    converters = {MATMUL_OP: _Converter(MATMUL_OP, nodes, _convert_matmul),
                  CONV_OP: _Converter(CONV_OP, nodes, _convert_conv), ATTENTION_OP: _AttentionConverter()}
    chatter = io.StringIO()  # TVM's importer prints every failing node's inputs before raising
    try:
        with (_tvm.onnx_converters(converters), warnings.catch_warnings(),
              contextlib.redirect_stdout(chatter)):
            warnings.filterwarnings("ignore", message=r"(?s).*(No Op registered for|Renaming name|lsc_ort).*")
            mod = tvm_from_onnx(model, shape_dict=_shape_dict(shape_dict))
    except LscImportError:
        raise
    except Exception:
        sys.stderr.write(chatter.getvalue()[-4000:])
        raise
    return mod
