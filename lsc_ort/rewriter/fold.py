"""Folding before encoding: what onnxruntime would fold into a Conv / Gemm weight, done on the
portable model so that the encoded weight carries it.

Once a weight is encoded, onnxruntime can no longer fold a following BatchNormalization,
per-channel Mul or Add into it, nor cancel the layout Transposes around a convolution; those
nodes would stay in the compressed model as separate passes over the activations. So
:func:`fold_model` runs first, in two steps:

1. **onnxruntime's own offline optimizer at the basic level** (``SessionOptions`` with
   ``graph_optimization_level = ORT_ENABLE_BASIC`` and ``optimized_model_filepath``): constant
   folding, Conv + BatchNormalization / Mul / Add fusion, and its transpose optimizer, which
   pushes the NHWC ↔ NCHW Transposes of TensorFlow-exported models through elementwise ops until
   they cancel. Its output is accepted only when every node stays a standard ONNX op; the unused
   domain imports it adds are dropped and the model's metadata is kept.
2. **Per-output-channel affine chains** that step 1 leaves (it does not fold ``Sub``, nor a Mul
   or Add that only became adjacent to the Conv once the Transposes were gone): a Conv or Gemm
   with a constant weight, followed (as the only consumer) by ``Mul`` / ``Div`` / ``Add`` /
   ``Sub`` with a constant per-channel operand or a ``BatchNormalization``, gets that operation
   folded into its weight and bias.

Folding scales each output channel, so zeros stay zeros: every zero of a weight keeps its exact
bit pattern (``-0.0`` included) and sparsity never drops; :func:`fold_model` checks it.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from lsc_ort.format import bit_patterns
from lsc_ort.rewriter.graph import GraphContext, is_standard
from lsc_ort.rewriter.model_io import TensorReader, TensorSink, has_external_data, iter_graphs

_WEIGHT_OPS = ("Conv", "Gemm", "MatMul")
_NAME_PREFIX = "__lsc_fold_"
_STANDARD = ("", "ai.onnx")
_INTRODUCED_OPS = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Gemm")
"""Standard ops onnxruntime's basic level may introduce (transpose optimizer, MatMul + Add)."""


@dataclass
class FoldResult:
    """What :func:`fold_model` did."""

    model: onnx.ModelProto
    removed: Counter[str] = field(default_factory=Counter)
    """Nodes removed by folding, by op type (e.g. ``{"BatchNormalization": 53, "Transpose": 106}``)."""
    notes: list[str] = field(default_factory=list)
    """Why a step was skipped (e.g. onnxruntime could not load the model)."""

    def summary(self) -> str:
        """One line saying what was folded, e.g. ``"folded 53 BatchNormalization, 53 Mul into
        weights; cancelled 108 Transpose"``."""
        into = [f"{self.removed[op]} {op}" for op in _FOLDED_OPS if self.removed.get(op)]
        transposes = self.removed.get("Transpose", 0)
        other = sum(c for op, c in self.removed.items() if op not in _FOLDED_OPS and op != "Transpose")
        parts = []
        if into:
            parts.append("folded " + ", ".join(into) + " into weights")
        if transposes:
            parts.append(f"cancelled {transposes} Transpose")
        if other:
            parts.append(f"simplified away {other} other node(s)")
        return "; ".join(parts) if parts else "nothing to fold"


_FOLDED_OPS = ("BatchNormalization", "Mul", "Div", "Add", "Sub")


def _op_counts(model: onnx.ModelProto) -> Counter[str]:
    return Counter(node.op_type for graph in iter_graphs(model.graph) for node in graph.node)


def _weight_arrays(model: onnx.ModelProto, reader: TensorReader) -> dict[str, np.ndarray]:
    """Node name → value of the constant weight (input 1) of each Conv / Gemm / MatMul."""
    ctx = GraphContext(model, reader)
    found = {}
    for node in model.graph.node:
        if node.op_type in _WEIGHT_OPS and is_standard(node) and len(node.input) > 1 and node.name:
            constant = ctx.constant(node.input[1])
            if constant is not None and constant.dtype is not None and constant.dtype.kind == "f":
                found[node.name] = ctx.read(constant)
    return found


# ---- step 1: onnxruntime's basic-level offline optimizer ------------------------------------


def _inline_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` (all tensors inline) with every node named, for onnxruntime."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    counter = 0
    for graph in iter_graphs(copy.graph):
        for node in graph.node:
            if not node.name:
                node.name = f"{_NAME_PREFIX}{counter}"
                counter += 1
    return copy


def _onnxruntime_basic(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` after onnxruntime's basic-level graph optimizations (raises on failure)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="lsc-ort-fold-") as tmp:
        path = os.path.join(tmp, "optimized.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = path
        options.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load_model(path)


def _portable(original: onnx.ModelProto, optimized: onnx.ModelProto) -> str | None:
    """Why ``optimized`` is not an acceptable replacement of ``original`` (None when it is): it
    must use only ops the original uses plus the few the basic level rewrites into, and no more
    Casts (onnxruntime inserts Casts around float16 ops its CPU kernels lack)."""
    known = {(n.domain or "", n.op_type) for g in iter_graphs(original.graph) for n in g.node}
    known.update(("", op) for op in _INTRODUCED_OPS)
    for graph in iter_graphs(optimized.graph):
        for node in graph.node:
            if (node.domain or "", node.op_type) not in known and (
                node.domain not in _STANDARD or ("", node.op_type) not in known
            ):
                return f"it introduced {node.domain + '.' if node.domain else ''}{node.op_type}"
    if _op_counts(optimized)["Cast"] > _op_counts(original)["Cast"]:
        return "it inserted Casts"
    if [i.name for i in original.graph.input if i.name not in _initializer_names(original)] != [
        i.name for i in optimized.graph.input if i.name not in _initializer_names(optimized)
    ]:
        return "it changed the graph inputs"
    if [o.name for o in original.graph.output] != [o.name for o in optimized.graph.output]:
        return "it changed the graph outputs"
    return None


def _folded_anything(original: onnx.ModelProto, optimized: onnx.ModelProto, before: dict[str, np.ndarray]) -> bool:
    """Whether onnxruntime folded something into a weight or cancelled a Transpose (its other,
    generic simplifications alone are not worth changing the model for)."""
    was, now = _op_counts(original), _op_counts(optimized)
    if now["Transpose"] < was["Transpose"] or now["BatchNormalization"] < was["BatchNormalization"]:
        return True
    after = _weight_arrays(optimized, TensorReader(None))
    return any(
        name in after and (after[name].shape != value.shape or not np.array_equal(after[name], value))
        for name, value in before.items()
    )


def _initializer_names(model: onnx.ModelProto) -> set[str]:
    return {t.name for t in model.graph.initializer}


def _restore_metadata(original: onnx.ModelProto, optimized: onnx.ModelProto) -> None:
    """Keep the original's opset imports (minus nothing it needs), metadata and node names."""
    used = {n.domain or "" for g in iter_graphs(optimized.graph) for n in g.node}
    used.update(n.domain or "" for f in optimized.functions for n in f.node)
    imports = [e for e in original.opset_import]
    have = {e.domain for e in imports}
    imports += [e for e in optimized.opset_import if e.domain in used and e.domain not in have]
    optimized.ClearField("opset_import")
    optimized.opset_import.extend(imports)
    optimized.ir_version = max(original.ir_version, 4) if original.ir_version else optimized.ir_version
    for name in ("producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(optimized, name, getattr(original, name))
    optimized.ClearField("metadata_props")
    optimized.metadata_props.extend(original.metadata_props)
    optimized.graph.name = original.graph.name
    for graph in iter_graphs(optimized.graph):
        for node in graph.node:
            if node.name.startswith(_NAME_PREFIX):
                node.name = ""


def _keep_zeros(model: onnx.ModelProto, before: dict[str, np.ndarray]) -> None:
    """Give every zero of a weight the exact bit pattern it had before folding (a scale folded
    into it may have turned ``+0.0`` into ``-0.0``), matching weights by node name."""
    by_name = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.name not in before or node.op_type not in _WEIGHT_OPS or len(node.input) < 2:
            continue
        tensor = by_name.get(node.input[1])
        original = before[node.name]
        if tensor is None or tuple(tensor.dims) != original.shape:
            continue
        value = numpy_helper.to_array(tensor)
        if value.dtype != original.dtype:
            continue
        zero = original == 0
        if np.array_equal(bit_patterns(value[zero]), bit_patterns(original[zero])):
            continue
        value = value.copy()
        value[zero] = original[zero]
        tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))


# ---- step 2: per-output-channel affine chains -----------------------------------------------

_AFFINE_OPS = ("Mul", "Div", "Add", "Sub", "BatchNormalization")


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    found: dict[str, list[onnx.NodeProto]] = {}
    for sub in iter_graphs(graph):
        for node in sub.node:
            for name in node.input:
                found.setdefault(name, []).append(node)
    return found


def _channel_vector(value: np.ndarray, channels: int, rank: int, channel_axis: int) -> np.ndarray | None:
    """``value`` as a [channels] vector if, broadcast against an output of ``rank`` dims whose
    channel axis is ``channel_axis`` (from the end: -3 for NCHW, -1 for [B, N]), it is constant
    along every other axis; None otherwise."""
    if value.ndim > rank:
        return None
    shape = (1,) * (rank - value.ndim) + tuple(value.shape)
    for axis, size in enumerate(shape):
        if size != 1 and (axis != rank + channel_axis or size != channels):
            return None
    flat = value.reshape(-1)
    return np.broadcast_to(flat, (channels,)) if flat.size > 1 else np.full(channels, flat[0], value.dtype)


class _AffineFolder:
    """Folds per-channel scale / shift nodes into the Conv or Gemm before them."""

    def __init__(self, model: onnx.ModelProto, reader: TensorReader, sink: TensorSink | None) -> None:
        self.model = model
        self.ctx = GraphContext(model, reader, sink)
        self.replaced: list[str] = []
        self.removed: Counter[str] = Counter()

    def run(self) -> None:
        graph = self.model.graph
        outputs = {o.name for o in graph.output}
        changed = True
        while changed:
            changed = False
            consumers = _consumers(graph)
            for node in list(graph.node):
                if node.op_type not in ("Conv", "Gemm") or not is_standard(node) or len(node.output) != 1:
                    continue
                users = consumers.get(node.output[0], [])
                if len(users) != 1 or node.output[0] in outputs:
                    continue
                nxt = users[0]
                if nxt.op_type in _AFFINE_OPS and is_standard(nxt) and self._fold(node, nxt):
                    self.removed[nxt.op_type] += 1
                    changed = True
                    break

    # What the node computes as W [..] and an optional bias, per output channel.
    def _layout(self, node: onnx.NodeProto) -> tuple[int, int, int] | None:
        """(weight axis of the output channels, output rank, channel axis from the end)."""
        weight = self.ctx.constant(node.input[1]) if len(node.input) > 1 else None
        if weight is None or weight.dtype is None or weight.dtype.kind != "f":
            return None
        if node.op_type == "Conv":
            rank = len(weight.shape)
            return 0, rank, -(rank - 1)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if len(weight.shape) != 2 or float(attrs.get("beta", 1.0)) != 1.0 or float(attrs.get("alpha", 1.0)) != 1.0:
            return None
        return (0 if int(attrs.get("transB", 0)) else 1), 2, -1

    def _fold(self, node: onnx.NodeProto, nxt: onnx.NodeProto) -> bool:
        layout = self._layout(node)
        if layout is None:
            return False
        axis, rank, channel_axis = layout
        weight_const = self.ctx.constant(node.input[1])
        assert weight_const is not None
        weight = self.ctx.read(weight_const)
        channels = weight.shape[axis]
        bias_name = node.input[2] if len(node.input) > 2 else ""
        bias_const = self.ctx.constant(bias_name) if bias_name else None
        if bias_name and bias_const is None:
            return False
        bias = np.zeros(channels, np.float32) if bias_const is None else self.ctx.read(bias_const)
        if bias_const is not None:
            vector = _channel_vector(bias, channels, 2 if node.op_type == "Gemm" else 1, -1)
            if vector is None:
                return False
            bias = vector
        scale, shift = self._affine(nxt, node.output[0], channels, rank, channel_axis, weight.dtype)
        if scale is None or shift is None:
            return False
        if not (np.all(np.isfinite(scale)) and np.all(np.isfinite(shift))):
            return False
        shape = [1] * weight.ndim
        shape[axis] = channels
        folded = (weight.astype(np.float32) * scale.reshape(shape)).astype(weight.dtype)
        zero = weight == 0
        folded[zero] = weight[zero]
        new_bias = (bias.astype(np.float32) * scale + shift).astype(weight.dtype)
        label = node.name or node.output[0]
        w_name = self.ctx.add_initializer(f"{node.input[1]}_folded", folded)
        b_name = self.ctx.add_initializer(f"{label}_bias_folded", new_bias)
        self.model.graph.initializer.extend(self.ctx.new_initializers)
        self.ctx.new_initializers.clear()
        self.ctx.initializers.update({t.name: t for t in self.model.graph.initializer[-2:]})
        while len(node.input) < 3:
            node.input.append("")
        self.replaced += [n for n in node.input[1:3] if n]
        node.input[1], node.input[2] = w_name, b_name
        node.output[0] = nxt.output[0]
        nodes = [n for n in self.model.graph.node if n is not nxt]
        self.model.graph.ClearField("node")
        self.model.graph.node.extend(nodes)
        return True

    def _affine(
        self, nxt: onnx.NodeProto, x: str, channels: int, rank: int, channel_axis: int, dtype: np.dtype
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(scale, shift) per channel such that nxt(y) = scale * y + shift, or (None, None)."""
        none = (None, None)
        ones, zeros = np.ones(channels, np.float32), np.zeros(channels, np.float32)
        if nxt.op_type == "BatchNormalization":
            if len(nxt.input) != 5 or len(nxt.output) != 1 or nxt.input[0] != x or channel_axis != -(rank - 1):
                return none
            attrs = {a.name: helper.get_attribute_value(a) for a in nxt.attribute}
            if int(attrs.get("training_mode", 0)):
                return none
            values = []
            for name in nxt.input[1:]:
                const = self.ctx.constant(name)
                if const is None:
                    return none
                value = self.ctx.read(const).astype(np.float32)
                if value.shape != (channels,):
                    return none
                values.append(value)
            gamma, beta, mean, var = values
            scale = gamma / np.sqrt(var + np.float32(attrs.get("epsilon", 1e-5)))
            return scale, beta - mean * scale
        if len(nxt.input) != 2 or len(nxt.output) != 1:
            return none
        other = nxt.input[1] if nxt.input[0] == x else nxt.input[0]
        const = self.ctx.constant(other)
        if const is None or nxt.input[0] == nxt.input[1] or const.dtype != dtype:
            return none
        vector = _channel_vector(self.ctx.read(const), channels, rank, channel_axis)
        if vector is None:
            return none
        vector = vector.astype(np.float32)
        x_first = nxt.input[0] == x
        if nxt.op_type == "Mul":
            return vector, zeros
        if nxt.op_type == "Div":
            return (1.0 / vector, zeros) if x_first and np.all(vector != 0) else none
        if nxt.op_type == "Add":
            return ones, vector
        if nxt.op_type == "Sub":
            return (ones, -vector) if x_first else none
        return none


def _remove_unused_initializers(graph: onnx.GraphProto, names: list[str]) -> None:
    used = {o.name for o in graph.output}
    for sub in iter_graphs(graph):
        for node in sub.node:
            used.update(node.input)
    unused = set(names) - used
    if unused:
        kept = [t for t in graph.initializer if t.name not in unused]
        graph.ClearField("initializer")
        graph.initializer.extend(kept)
        inputs = [v for v in graph.input if v.name not in unused]
        graph.ClearField("input")
        graph.input.extend(inputs)


# ---- the pass ----------------------------------------------------------------------------------


def fold_model(
    model: onnx.ModelProto, *, base_dir: str | os.PathLike | None = None, sink: TensorSink | None = None
) -> FoldResult:
    """Fold BatchNormalization, per-channel Mul / Div / Add / Sub and biases into the Conv / Gemm
    weights of ``model`` and cancel layout Transposes (see the module docstring).

    ``model`` is not modified; the result holds a new model (its tensors inline when onnxruntime's
    optimizer ran). Zeros of every weight keep their exact bit pattern, so sparsity is kept.

    Args:
        model: a standard ONNX model (custom-domain nodes make onnxruntime's step skip).
        base_dir: directory of ``model``'s external data.
        sink: where the folded weights go when onnxruntime's step did not run (default inline).
    """
    reader = TensorReader(base_dir)
    before_ops = _op_counts(model)
    notes: list[str] = []
    current = onnx.ModelProto()
    current.CopyFrom(model)
    inline = None if has_external_data(model) else _inline_copy(model)
    if inline is None:
        notes.append(
            "onnxruntime's optimizer skipped (layout Transposes stay): the model keeps its weights "
            "in external data, which is read one tensor at a time"
        )
    else:
        before_weights = _weight_arrays(inline, TensorReader(None))
        try:
            optimized = _onnxruntime_basic(inline)
        except Exception as error:  # onnxruntime raises its own exception types
            notes.append(f"onnxruntime's optimizer skipped: {' '.join(str(error).split())[:200]}")
        else:
            problem = _portable(inline, optimized)
            if problem is not None:
                notes.append(f"onnxruntime's optimizer not used: {problem}")
            elif not _folded_anything(inline, optimized, before_weights):
                pass  # only generic simplifications: keep the model as it was
            else:
                _keep_zeros(optimized, before_weights)
                _restore_metadata(model, optimized)
                current = optimized
                reader = TensorReader(None)
    folder = _AffineFolder(current, reader, sink)
    folder.run()
    _remove_unused_initializers(current.graph, folder.replaced)
    after_ops = _op_counts(current)
    removed = Counter({op: count - after_ops.get(op, 0) for op, count in before_ops.items()
                       if count > after_ops.get(op, 0)})
    return FoldResult(current, removed, notes)
