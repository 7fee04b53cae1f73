"""What rewrite rules see of a graph: constants, names, and where new tensors go."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from lsc_ort.rewriter.model_io import InlineSink, TensorReader, TensorSink, iter_graphs

_STANDARD_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class ConstantValue:
    """A tensor whose value is fixed in the model: an initializer or a ``Constant`` node output."""

    name: str
    tensor: onnx.TensorProto
    """The initializer, or the ``value`` tensor of the ``Constant`` node."""
    node: onnx.NodeProto | None
    """The ``Constant`` node producing it, None for an initializer."""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensor.dims)

    @property
    def dtype(self) -> np.dtype | None:
        """The numpy dtype, None for element types numpy cannot hold (e.g. bfloat16 here)."""
        try:
            return np.dtype(helper.tensor_dtype_to_np_dtype(self.tensor.data_type))
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def dtype_name(self) -> str:
        return helper.tensor_dtype_to_string(self.tensor.data_type).removeprefix("TensorProto.").lower()


def is_standard(node: onnx.NodeProto) -> bool:
    """Whether ``node`` is in the default ONNX domain."""
    return node.domain in _STANDARD_DOMAINS


def node_label(node: onnx.NodeProto, index: int | None = None) -> str:
    """How messages name a node: ``node 'name' (Gemm)``, or by position and output if unnamed."""
    if node.name:
        return f"node '{node.name}' ({node.op_type})"
    where = f" #{index}" if index is not None else ""
    output = f" producing '{node.output[0]}'" if node.output else ""
    return f"{node.op_type} node{where}{output}"


def _constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    """The value of a ``Constant`` node as a TensorProto (None for ``sparse_value`` and strings)."""
    if len(node.attribute) != 1:
        return None
    attribute = node.attribute[0]
    name = node.output[0]
    if attribute.name == "value":
        return attribute.t
    if attribute.name == "value_float":
        return helper.make_tensor(name, onnx.TensorProto.FLOAT, [], [attribute.f])
    if attribute.name == "value_floats":
        return helper.make_tensor(name, onnx.TensorProto.FLOAT, [len(attribute.floats)], attribute.floats)
    if attribute.name == "value_int":
        return helper.make_tensor(name, onnx.TensorProto.INT64, [], [attribute.i])
    if attribute.name == "value_ints":
        return helper.make_tensor(name, onnx.TensorProto.INT64, [len(attribute.ints)], attribute.ints)
    return None


class GraphContext:
    """The main graph of a model being rewritten, as the rules query and extend it."""

    def __init__(
        self, model: onnx.ModelProto, reader: TensorReader | None = None, sink: TensorSink | None = None
    ) -> None:
        self.model = model
        self.graph = model.graph
        self.reader = reader or TensorReader(None)
        self.sink: TensorSink = sink or InlineSink()
        self.initializers = {tensor.name: tensor for tensor in self.graph.initializer}
        self.constant_nodes = {
            node.output[0]: node
            for node in self.graph.node
            if node.op_type == "Constant" and is_standard(node) and len(node.output) == 1
        }
        self.new_initializers: list[onnx.TensorProto] = []
        self.memo: dict[object, object] = {}
        """Per-pass cache the rules may use (e.g. a bias shared by several nodes)."""
        self._names = self._all_names()
        self._counter = 0
        self._consumers: dict[str, list[onnx.NodeProto]] | None = None
        self._shapes: dict[str, tuple[int | str, ...] | None] | None = None
        self._elem_types: dict[str, int] = {}
        self.claimed: set[int] = set()
        """ids of the nodes a rewrite has absorbed already (a node is absorbed at most once)."""

    def _all_names(self) -> set[str]:
        names: set[str] = set()
        for graph in iter_graphs(self.graph):
            names.update(t.name for t in graph.initializer)
            names.update(v.name for v in (*graph.input, *graph.output, *graph.value_info))
            for node in graph.node:
                names.update(node.input)
                names.update(node.output)
                names.add(node.name)
        return names

    def consumers(self, name: str) -> list[onnx.NodeProto]:
        """The nodes (of the graph and its subgraphs) that read tensor ``name``, as the graph was
        when first asked."""
        if self._consumers is None:
            found: dict[str, list[onnx.NodeProto]] = {}
            for graph in iter_graphs(self.graph):
                for node in graph.node:
                    for input_name in set(node.input):
                        found.setdefault(input_name, []).append(node)
            self._consumers = found
        return self._consumers.get(name, [])

    def shape(self, name: str) -> tuple[int | str, ...] | None:
        """The shape of tensor ``name`` as ONNX shape inference sees it (dims as ints, or as the
        names of symbolic dims), None where it is unknown. Inferred once, when first asked, with
        data propagation (which sees through computed ``Reshape`` shapes) where onnx manages it."""
        if self._shapes is None:
            shapes: dict[str, tuple[int | str, ...] | None] = {}
            inferred = None
            for data_prop in (True, False):
                try:
                    inferred = onnx.shape_inference.infer_shapes(self.model, data_prop=data_prop).graph
                    break
                except Exception:  # shape inference rejects some valid models: then nothing is known
                    continue
            if inferred is not None:
                for value in (*inferred.input, *inferred.value_info, *inferred.output):
                    tensor = value.type.tensor_type
                    if tensor.elem_type:
                        self._elem_types[value.name] = int(tensor.elem_type)
                    if not tensor.HasField("shape"):
                        continue
                    dims: list[int | str] = []
                    for dim in tensor.shape.dim:
                        if dim.HasField("dim_value"):
                            dims.append(int(dim.dim_value))
                        elif dim.HasField("dim_param"):
                            dims.append(dim.dim_param)
                        else:
                            break
                    else:
                        shapes[value.name] = tuple(dims)
            self._shapes = shapes
        return self._shapes.get(name)

    def elem_type(self, name: str) -> int:
        """The ``onnx.TensorProto`` element type of tensor ``name`` as shape inference sees it
        (inferred with :meth:`shape`; initializers and constants as stored), 0 where unknown."""
        constant = self.constant(name)
        if constant is not None:
            return int(constant.tensor.data_type)
        self.shape(name)
        return self._elem_types.get(name, 0)

    def is_graph_output(self, name: str) -> bool:
        """Whether ``name`` is an output of the main graph."""
        return any(output.name == name for output in self.graph.output)

    def opset(self, domain: str = "") -> int:
        """The model's opset version for ``domain`` (0 if not imported)."""
        for entry in self.model.opset_import:
            if entry.domain == domain or (domain == "" and entry.domain == "ai.onnx"):
                return int(entry.version)
        return 0

    def constant(self, name: str) -> ConstantValue | None:
        """The constant named ``name``, or None if it is computed at run time (or absent)."""
        if not name:
            return None
        if name in self.initializers:
            return ConstantValue(name, self.initializers[name], None)
        node = self.constant_nodes.get(name)
        if node is not None:
            tensor = _constant_tensor(node)
            if tensor is not None:
                return ConstantValue(name, tensor, node)
        return None

    def read(self, constant: ConstantValue) -> np.ndarray:
        """The value of ``constant`` (reads external data if needed)."""
        return self.reader.read(constant.tensor)

    def fresh_name(self, base: str) -> str:
        """A tensor or node name not used anywhere in the model, derived from ``base``."""
        name = base
        while name in self._names:
            self._counter += 1
            name = f"{base}_{self._counter}"
        self._names.add(name)
        return name

    def named(self, node: onnx.NodeProto) -> onnx.NodeProto:
        """``node`` if it has a name, else a copy named after its first output and op type
        (``'h/MatMul'``), unique in the model: the nodes a pass makes from it are named after it,
        so that every error message can name the node."""
        if node.name:
            return node
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = self.fresh_name(f"{node.output[0] if node.output else ''}/{node.op_type}".lstrip("/"))
        return copy

    def name_new_nodes(self, nodes: list[onnx.NodeProto], base: str) -> None:
        """Give each unnamed node of ``nodes`` a unique name derived from ``base``."""
        for node in nodes:
            if not node.name:
                node.name = self.fresh_name(f"{base}/{node.op_type}")

    def add_initializer(self, base: str, array: np.ndarray) -> str:
        """Add ``array`` as a new initializer named after ``base``; returns its name."""
        name = self.fresh_name(base)
        self.new_initializers.append(self.sink.make(name, array))
        return name
