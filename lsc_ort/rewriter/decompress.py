"""The inverse pass: ``LSCMatMul`` / ``LSCConv`` → standard ops with the decoded weights, and
``LSCAttention`` → the ``MatMul``, ``Mul``, ``Add``, ``Softmax``, ``MatMul`` chain it fused."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from lsc_ort.api import inspect
from lsc_ort.model_file import check_model_proto
from lsc_ort.ops import ATTENTION_OP, CONV_ACTIVATIONS, CONV_OP, DOMAIN, MATMUL_ACTIVATIONS, MATMUL_OP
from lsc_ort.reference import (
    INPUT_LAYOUT_PERM,
    OUTPUT_LAYOUT_PERMS,
    TILES,
    attention_scale,
    matmul_head_layouts,
    matmul_norm,
    weight_values,
)
from lsc_ort.report import DENSE, LayerRow
from lsc_ort.rewriter.choose import weight_statistics
from lsc_ort.rewriter.compress import RewriteError, referenced_names, remove_unused
from lsc_ort.rewriter.graph import GraphContext, node_label
from lsc_ort.rewriter.model_io import (
    ModelLike,
    TensorReader,
    TensorSink,
    iter_graphs,
    load_external_tensors,
    resolve_model,
    transform_file,
)
from lsc_ort.rewriter.rules import DEFAULT_RULES, Match
from lsc_ort.rewriter.rules.base import attributes, replacement
from lsc_ort.rewriter.tile_pairs import layout, tile_pair_problems

BLOB_SUFFIX = "_lsc_blob"
_LAYOUT_ATTRIBUTES = ("heads", "input_layout", "output_layout")
_NORM_ATTRIBUTES = ("norm", "epsilon")
LAYER_NORM_OPSET = 17
"""First default-domain opset with ``LayerNormalization``, which ``norm="LayerNorm"`` becomes."""


@dataclass
class DecompressResult:
    """What :func:`decompress_model` did."""

    model: onnx.ModelProto
    nodes: int = 0
    """Custom-op nodes replaced."""
    weights: dict[str, str] = field(default_factory=dict)
    """Blob initializer name → name of its decoded weight initializer."""


def uses_domain(model: onnx.ModelProto, domain: str = DOMAIN) -> bool:
    """Whether any node of ``model`` (graphs, subgraphs, functions) is in ``domain``."""
    if any(node.domain == domain for graph in iter_graphs(model.graph) for node in graph.node):
        return True
    return any(node.domain == domain for function in model.functions for node in function.node)


def _known_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Ranks of the values whose shapes ONNX shape inference knows (empty if it fails)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    graph = inferred.graph
    ranks = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            ranks[value.name] = len(tensor_type.shape.dim)
    for tensor in graph.initializer:
        ranks[tensor.name] = len(tensor.dims)
    return ranks


class _Decoder:
    """Decodes each blob once into a weight initializer."""

    def __init__(self, ctx: GraphContext, result: DecompressResult) -> None:
        self.ctx = ctx
        self.result = result
        self._used = referenced_names(ctx.graph)
        self._dtypes: dict[str, np.dtype] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}

    def weight(self, blob_name: str) -> tuple[str, np.dtype]:
        """The name and dtype of the initializer holding the weight decoded from ``blob_name``."""
        if blob_name not in self.result.weights:
            constant = self.ctx.constant(blob_name)
            if constant is None:
                raise ValueError(f"the weight blob '{blob_name}' is not a constant; cannot decompress")
            weight = weight_values(self.ctx.read(constant))
            base = (
                blob_name.removesuffix(BLOB_SUFFIX)
                if blob_name.endswith(BLOB_SUFFIX)
                else f"{blob_name}_decoded"
            )
            name = base if base not in self._used and base not in self.ctx.initializers else base + "_decoded"
            self.result.weights[blob_name] = self.ctx.add_initializer(name, weight)
            self._dtypes[blob_name] = weight.dtype
            self._shapes[blob_name] = tuple(weight.shape)
        return self.result.weights[blob_name], self._dtypes[blob_name]

    def shape(self, blob_name: str) -> tuple[int, ...]:
        """The shape of the weight decoded from ``blob_name`` (decoding it if need be)."""
        self.weight(blob_name)
        return self._shapes[blob_name]


def _activation(node: onnx.NodeProto, supported: tuple[str, ...]) -> str:
    """The ``activation`` attribute of a custom-op node, one of ``supported``."""
    activation = attributes(node).get("activation", b"")
    activation = activation.decode() if isinstance(activation, bytes) else str(activation)
    if activation not in supported:
        raise ValueError(f"unknown activation {activation!r}")
    return activation


def _activation_nodes(
    activation: str, x: str, y: str, label: str, dtype: np.dtype, ctx: GraphContext
) -> list[onnx.NodeProto]:
    """Standard nodes computing ``y = activation(x)``: ``Relu``, or Gelu in the erf form
    ``x * (1 + erf(x / sqrt(2))) * 0.5`` (every opset; ONNX ``Gelu`` needs opset 20)."""
    if activation == "Relu":
        return [helper.make_node("Relu", [x], [y], name=ctx.fresh_name(f"{label}/relu"))]
    sqrt2 = ctx.add_initializer(f"{label}_sqrt2", np.array(math.sqrt(2.0), dtype=dtype))
    one = ctx.add_initializer(f"{label}_one", np.array(1.0, dtype=dtype))
    half = ctx.add_initializer(f"{label}_half", np.array(0.5, dtype=dtype))
    names = [ctx.fresh_name(f"{y}_{step}") for step in ("scaled", "erf", "shifted", "product")]
    steps = [("Div", [x, sqrt2]), ("Erf", [names[0]]), ("Add", [names[1], one]), ("Mul", [x, names[2]]),
             ("Mul", [names[3], half])]
    outputs = [*names, y]
    return [
        helper.make_node(op, inputs, [out], name=ctx.fresh_name(f"{label}/gelu_{op.lower()}"))
        for (op, inputs), out in zip(steps, outputs, strict=True)
    ]


def _epilogue_nodes(
    x: str, residual: str, activation: str, y: str, label: str, dtype: np.dtype, ctx: GraphContext
) -> list[onnx.NodeProto]:
    """Standard nodes computing ``y = activation(x + residual)`` of an op's product ``x`` (the
    residual and the activation each optional; one of them given)."""
    nodes = []
    if residual:
        summed = ctx.fresh_name(f"{y}_sum") if activation else y
        nodes.append(helper.make_node("Add", [x, residual], [summed], name=ctx.fresh_name(f"{label}/residual")))
        x = summed
    return nodes + (_activation_nodes(activation, x, y, label, dtype, ctx) if activation else [])


def _matmul(
    node: onnx.NodeProto, decoder: _Decoder, ctx: GraphContext, ranks: dict[str, int]
) -> list[onnx.NodeProto]:
    attrs = attributes(node)
    heads, layout_in, layout_out = matmul_head_layouts(
        attrs.get("heads"), attrs.get("input_layout"), attrs.get("output_layout")
    )
    given = [len(node.input) > i and bool(node.input[i]) for i in range(6)]
    if layout_out and given[3]:
        raise ValueError(f"a residual Z cannot be combined with output_layout {layout_out}")
    norm, epsilon = matmul_norm(attrs.get("norm"), attrs.get("epsilon"), given[4], given[5], layout_out)
    if TILES in (layout_in, layout_out):  # one side of a pair (decompress_graph checked): the tensor between is plain
        return _matmul(_without_tiles(node), decoder, ctx, ranks)
    if layout_in or layout_out:
        return _matmul_heads(node, decoder, ctx, ranks, heads, layout_in, layout_out)
    if norm:  # the op without its norm, then LayerNormalization of its result
        return _matmul_norm(node, decoder, ctx, ranks, norm, epsilon)
    alpha = float(attrs.get("alpha", 1.0))
    trans_b = int(attrs.get("transB", 0)) != 0
    bias = node.input[2] if len(node.input) > 2 else ""
    activation = _activation(node, MATMUL_ACTIVATIONS)
    w, dtype = decoder.weight(node.input[1])
    a, y = node.input[0], node.output[0]
    label = node.name or y
    residual = node.input[3] if len(node.input) > 3 else ""
    if activation or residual:  # the product, then Add of the residual Z, then the activation
        product = helper.make_node(MATMUL_OP, node.input[:3], [ctx.fresh_name(f"{y}_product")],
                                   name=node.name or None, domain=DOMAIN)
        product.attribute.extend(a for a in node.attribute if a.name != "activation")
        return _matmul(product, decoder, ctx, ranks) + _epilogue_nodes(
            product.output[0], residual, activation, y, label, dtype, ctx
        )
    if not trans_b and alpha == 1.0 and not bias:
        return [replacement(node, "MatMul", [a, w], [y], "")]
    gemm_ok = ctx.opset() >= 11 or (bias and ctx.opset() >= 7)
    if ranks.get(a) == 2 and gemm_ok:
        return [
            replacement(
                node,
                "Gemm",
                [a, w, bias] if bias else [a, w],
                [y],
                "",
                alpha=alpha if alpha != 1.0 else None,
                transB=1 if trans_b else None,
            )
        ]
    nodes = []
    if trans_b:
        transposed = ctx.fresh_name(f"{w}_transposed")
        nodes.append(
            helper.make_node(
                "Transpose", [w], [transposed], name=ctx.fresh_name(f"{label}/transB"), perm=[1, 0]
            )
        )
        w = transposed
    steps = [("alpha", alpha != 1.0), ("bias", bool(bias))]
    last = max((i for i, (_, on) in enumerate(steps) if on), default=-1)
    out = y if last == -1 else ctx.fresh_name(f"{y}_matmul")
    nodes.append(replacement(node, "MatMul", [a, w], [out], ""))
    if alpha != 1.0:
        scaled = y if last == 0 else ctx.fresh_name(f"{y}_scaled")
        alpha_name = ctx.add_initializer(f"{label}_alpha", np.array(alpha, dtype=dtype))
        nodes.append(
            helper.make_node("Mul", [out, alpha_name], [scaled], name=ctx.fresh_name(f"{label}/alpha"))
        )
        out = scaled
    if bias:
        nodes.append(helper.make_node("Add", [out, bias], [y], name=ctx.fresh_name(f"{label}/bias")))
    return nodes


def _matmul_norm(
    node: onnx.NodeProto, decoder: _Decoder, ctx: GraphContext, ranks: dict[str, int], norm: str, epsilon: float
) -> list[onnx.NodeProto]:
    """A plain ``LSCMatMul`` with a ``norm``: the op without it (:func:`_matmul`), then
    ``LayerNormalization`` (``axis=-1``) of its result with ``norm_scale`` and ``norm_bias``."""
    if ctx.opset() < LAYER_NORM_OPSET:
        raise ValueError(f"norm {norm} becomes LayerNormalization, which needs default-domain opset >= "
                         f"{LAYER_NORM_OPSET}; the model imports opset {ctx.opset()}")
    y = node.output[0]
    plain = helper.make_node(MATMUL_OP, node.input[:4], [ctx.fresh_name(f"{y}_unnormalized")],
                             name=node.name or None, domain=DOMAIN)
    plain.attribute.extend(a for a in node.attribute if a.name not in _NORM_ATTRIBUTES)
    layer_norm = helper.make_node("LayerNormalization", [plain.output[0], *(i for i in node.input[4:6] if i)], [y],
                                  name=ctx.fresh_name(f"{node.name or y}/norm"), axis=-1, epsilon=epsilon)
    return [*_matmul(plain, decoder, ctx, ranks), layer_norm]


def _without_tiles(node: onnx.NodeProto) -> onnx.NodeProto:
    """``node`` without its ``TILES`` layout attributes (its other ones, ``heads`` included, kept)."""
    plain = onnx.NodeProto()
    plain.CopyFrom(node)
    del plain.attribute[:]
    plain.attribute.extend(
        a for a in node.attribute if not (a.name in ("input_layout", "output_layout") and layout(node, a.name) == TILES)
    )
    return plain


def _matmul_heads(
    node: onnx.NodeProto,
    decoder: _Decoder,
    ctx: GraphContext,
    ranks: dict[str, int],
    heads: int,
    layout_in: str,
    layout_out: str,
) -> list[onnx.NodeProto]:
    """An ``LSCMatMul`` with attention-head layouts: for ``input_layout``, ``Transpose`` (perm
    ``[0, 2, 1, 3]``) and ``Reshape`` to ``[0, 0, K]`` of ``A`` (not ``-1``, which onnxruntime
    cannot infer for an empty batch); the plain product with its
    epilogue (:func:`_matmul`); for ``output_layout``, ``Reshape`` to ``[0, 0, H, N/H]`` and the
    layout's ``Transpose`` of the result."""
    a, y = node.input[0], node.output[0]
    label = node.name or y
    weight_shape = decoder.shape(node.input[1])
    if len(weight_shape) != 2:
        raise ValueError(f"the weight blob holds a tensor of rank {len(weight_shape)}; a 2-D matrix is needed")
    k, n = weight_shape[::-1] if int(attributes(node).get("transB", 0)) else weight_shape
    nodes, inputs = [], list(node.input)
    if layout_in:
        if k % heads:
            raise ValueError(f"heads {heads} does not divide K = {k} (input_layout {layout_in})")
        if ranks.get(a, 4) != 4:
            raise ValueError(f"input_layout {layout_in} needs A of rank 4 [B, H, S, K/H], got rank {ranks[a]}")
        tokens, read = ctx.fresh_name(f"{a}_tokens"), ctx.fresh_name(f"{a}_read")
        read_shape = ctx.add_initializer(f"{label}_read_shape", np.array([0, 0, k], np.int64))
        nodes += [
            helper.make_node("Transpose", [a], [tokens], name=ctx.fresh_name(f"{label}/input_layout"),
                             perm=list(INPUT_LAYOUT_PERM)),
            helper.make_node("Reshape", [tokens, read_shape], [read], name=ctx.fresh_name(f"{label}/input_merge")),
        ]
        inputs[0] = read
    if layout_out:
        if n % heads:
            raise ValueError(f"heads {heads} does not divide N = {n} (output_layout {layout_out})")
        if not layout_in and ranks.get(a, 3) != 3:
            raise ValueError(f"output_layout {layout_out} needs A of rank 3 [B, S, K], got rank {ranks[a]}")
    plain_y = ctx.fresh_name(f"{y}_plain") if layout_out else y
    plain = replacement(node, MATMUL_OP, inputs, [plain_y], DOMAIN)
    plain.attribute.extend(attr for attr in node.attribute if attr.name not in _LAYOUT_ATTRIBUTES)
    nodes += _matmul(plain, decoder, ctx, ranks)
    if layout_out:
        split, split_shape = ctx.fresh_name(f"{y}_heads"), ctx.add_initializer(
            f"{label}_split_shape", np.array([0, 0, heads, n // heads], np.int64)
        )
        nodes += [
            helper.make_node("Reshape", [plain_y, split_shape], [split], name=ctx.fresh_name(f"{label}/output_split")),
            helper.make_node("Transpose", [split], [y], name=ctx.fresh_name(f"{label}/output_layout"),
                             perm=list(OUTPUT_LAYOUT_PERMS[layout_out])),
        ]
    return nodes


def _conv(node: onnx.NodeProto, decoder: _Decoder, ctx: GraphContext) -> list[onnx.NodeProto]:
    w, dtype = decoder.weight(node.input[1])
    activation = _activation(node, CONV_ACTIVATIONS)
    residual = node.input[3] if len(node.input) > 3 else ""
    y = node.output[0]
    label = node.name or y
    out = ctx.fresh_name(f"{y}_conv") if activation or residual else y
    bias = [i for i in node.input[2:3] if i]
    new = replacement(node, "Conv", [node.input[0], w, *bias], [out], "")
    new.attribute.extend(a for a in node.attribute if a.name != "activation")
    if not (activation or residual):
        return [new]
    return [new, *_epilogue_nodes(out, residual, activation, y, label, dtype, ctx)]


def _attention(node: onnx.NodeProto, ctx: GraphContext) -> list[onnx.NodeProto]:
    """``MatMul(Q, K)``, ``Mul`` by the scale (unless 1), ``Add`` of the bias (if any),
    ``Softmax(axis=-1)``, ``MatMul(·, V)``."""
    scale = attention_scale(node)
    o = node.output[0]
    q, k, v = node.input[:3]
    bias = node.input[3] if len(node.input) > 3 else ""
    x = ctx.fresh_name(f"{o}_scores")
    nodes = [helper.make_node("MatMul", [q, k], [x])]
    if scale != 1.0:
        c = ctx.add_initializer(f"{o}_scale", np.array(scale, np.float32))
        nodes.append(helper.make_node("Mul", [x, c], [x := ctx.fresh_name(f"{o}_scaled")]))
    if bias:
        nodes.append(helper.make_node("Add", [x, bias], [x := ctx.fresh_name(f"{o}_biased")]))
    p = ctx.fresh_name(f"{o}_probabilities")
    nodes.append(helper.make_node("Softmax", [x], [p], axis=-1))
    nodes.append(replacement(node, "MatMul", [p, v], [o], ""))
    return nodes


def decompress_graph(
    model: onnx.ModelProto,
    *,
    base_dir: str | None = None,
    sink: TensorSink | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> DecompressResult:
    """Decompress ``model`` in place (the pass behind :func:`decompress`)."""
    ctx = GraphContext(model, TensorReader(base_dir), sink)
    result = DecompressResult(model)
    decoder = _Decoder(ctx, result)
    nodes = list(model.graph.node)
    targets = [
        i for i, n in enumerate(nodes) if n.domain == DOMAIN and n.op_type in (MATMUL_OP, CONV_OP, ATTENTION_OP)
    ]
    if not targets:
        return result
    unpaired = tile_pair_problems(model.graph)
    if unpaired:
        index, node, problem = unpaired[0]
        raise RewriteError(f"{node_label(node, index)}: {problem}")
    ranks = _known_ranks(model)
    replaced: dict[int, list[onnx.NodeProto]] = {}
    touched: set[str] = set()
    for done, index in enumerate(targets, 1):
        node = nodes[index]
        label = node_label(node, index)
        try:
            named = ctx.named(node)
            if node.op_type == MATMUL_OP:
                replaced[index] = _matmul(named, decoder, ctx, ranks)
            elif node.op_type == CONV_OP:
                replaced[index] = _conv(named, decoder, ctx)
            else:
                replaced[index] = _attention(named, ctx)
            ctx.name_new_nodes(replaced[index], named.name)
        except Exception as error:
            raise RewriteError(f"{label}: {error}") from error
        if node.op_type != ATTENTION_OP:
            touched.add(node.input[1])
        result.nodes += 1
        if progress is not None:
            progress(done, len(targets), label)
    graph = model.graph
    new_nodes = [new for index, node in enumerate(nodes) for new in replaced.get(index, [node])]
    graph.ClearField("node")
    graph.node.extend(new_nodes)
    graph.initializer.extend(ctx.new_initializers)
    remove_unused(graph, touched)
    if not uses_domain(model):
        kept = [entry for entry in model.opset_import if entry.domain != DOMAIN]
        model.ClearField("opset_import")
        model.opset_import.extend(kept)
    return result


def decompress_model(model: ModelLike, *, base_dir: str | os.PathLike | None = None) -> DecompressResult:
    """:func:`decompress`, also returning what was done."""
    proto, base = resolve_model(model, base_dir)
    result = decompress_graph(proto, base_dir=base)
    load_external_tensors(proto, base)
    return result


def decompress(model: ModelLike, *, base_dir: str | os.PathLike | None = None) -> onnx.ModelProto:
    """Turn ``LSCMatMul`` / ``LSCConv`` nodes back into standard ``MatMul`` / ``Gemm`` / ``Conv``
    nodes reading the decoded weights (bit-exact) from initializers.

    ``LSCConv`` becomes ``Conv``, followed by ``Add`` of its residual input ``Z`` and ``Relu`` for
    ``activation="Relu"``.
    ``LSCMatMul`` becomes ``MatMul`` when it has no ``alpha``, ``transB`` or bias; ``Gemm`` when
    its input is known to be 2-D; otherwise ``MatMul`` followed by ``Mul`` (alpha) and ``Add``
    (bias), with a ``Transpose`` of the weight for ``transB``; its attention-head layouts become
    ``Transpose`` + ``Reshape`` of ``A`` before the product (``input_layout``) and ``Reshape`` +
    ``Transpose`` of the result after it (``output_layout``). Its residual ``Z`` becomes an ``Add``
    (which broadcasts as the op does), its activation ``Relu`` or Gelu in erf form, and its
    ``norm="LayerNorm"`` a ``LayerNormalization`` (``axis=-1``) last, which needs default-domain
    opset 17 or later (an error otherwise). The row tiles (``TILES``) go: an ``LSCMatMul``
    writing its output in them and the ones reading it so (the only readers the
    rewriter makes) hand the tensor on plain; a ``TILES`` layout without such a partner is an
    error (:func:`lsc_ort.rewriter.tile_pairs.tile_pair_problems`). A weight decoded from the blob
    ``W_lsc_blob`` is named ``W`` again when that name is free. The ``lsc_ort`` domain leaves the
    opset imports when no node uses it any more.

    Args:
        model: an ``onnx.ModelProto`` (never modified) or a path.
        base_dir: directory of the external data of an in-memory ``model``.
    """
    return decompress_model(model, base_dir=base_dir).model


def decompress_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    external_data: bool | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> DecompressResult:
    """:func:`decompress` from file to file, streaming the decoded weights into ``<dst>.data`` when
    the output has external data; atomic, ``src`` never modified."""

    def transform(model: onnx.ModelProto, base_dir: str, sink: TensorSink) -> DecompressResult:
        return decompress_graph(model, base_dir=base_dir, sink=sink, progress=progress)

    return transform_file(src, dst, transform, external_data=external_data, added_bytes=decoded_bytes)


def decoded_bytes(model: onnx.ModelProto, base_dir: str | None = None) -> int:
    """Bytes of the dense weights that decompressing ``model`` creates (from the blob headers)."""
    ctx = GraphContext(model, TensorReader(base_dir))
    blobs = {
        node.input[1]
        for node in model.graph.node
        if node.domain == DOMAIN and node.op_type in (MATMUL_OP, CONV_OP) and len(node.input) > 1
    }
    total = 0
    for name in blobs:
        constant = ctx.constant(name)
        if constant is not None:
            total += int(inspect(ctx.read(constant))["dense_bytes"])
    return total


def layer_rows(model: ModelLike, *, base_dir: str | os.PathLike | None = None) -> list[LayerRow]:
    """The per-layer report of a model (compressed or not), without rewriting it.

    One row per ``LSCMatMul`` / ``LSCConv`` node (from its blob's header) and per standard
    MatMul / Gemm / Conv node whose weight the rewrite rules would accept (kept dense).
    """
    if isinstance(model, onnx.ModelProto):
        proto, base = check_model_proto(model), None if base_dir is None else str(base_dir)
    else:
        proto, base = resolve_model(model, base_dir)
    ctx = GraphContext(proto, TensorReader(base))
    rows: list[LayerRow] = []
    seen: set[str] = set()
    for index, node in enumerate(proto.graph.node):
        name = node.name or f"#{index} {node.op_type}"
        if node.domain == DOMAIN and node.op_type in (MATMUL_OP, CONV_OP) and len(node.input) > 1:
            blob = ctx.constant(node.input[1])
            if blob is None:
                continue
            try:
                info = inspect(ctx.read(blob))
            except ValueError as error:
                raise RewriteError(f"{node_label(node, index)}: {error}") from error
            rows.append(
                LayerRow(
                    name,
                    node.op_type,
                    blob.name,
                    tuple(info["shape"]),
                    info["dtype"],
                    info["sparsity"],
                    info["codec"],
                    info["dense_bytes"],
                    info["total_bytes"],
                    info["entropy_bound_bytes"],
                    shared=blob.name in seen,
                    encoding_efficiency=info.get("encoding_efficiency"),
                )
            )
            seen.add(blob.name)
            continue
        rule = next((r for r in DEFAULT_RULES if r.matches(node)), None)
        if rule is None:
            continue
        found = rule.check(node, ctx)
        if not isinstance(found, Match):
            continue
        weight = ctx.read(found.weight)
        sparsity, bound = weight_statistics(weight)
        rows.append(
            LayerRow(
                name,
                node.op_type,
                found.weight.name,
                weight.shape,
                str(weight.dtype),
                sparsity,
                DENSE,
                weight.nbytes,
                weight.nbytes,
                bound,
                shared=found.weight.name in seen,
            )
        )
        seen.add(found.weight.name)
    return rows
