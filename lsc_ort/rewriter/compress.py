"""The rewrite pass: standard ops with sparse constant weights → lsc-ort custom ops."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import onnx
from onnx import helper

from lsc_ort.ops import DOMAIN, OPSET_VERSION
from lsc_ort.report import LayerRow
from lsc_ort.rewriter.attention import attention_node, find_attention
from lsc_ort.rewriter.choose import AUTO, CodecChooser, WeightChoice
from lsc_ort.rewriter.fold import FoldResult, fold_model
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
from lsc_ort.rewriter.pooling import find_mean_pooling, pooling_nodes
from lsc_ort.rewriter.rules import DEFAULT_RULES, Decline, RewriteRule
from lsc_ort.rewriter.tile_pairs import pair_row_tiles

DEFAULT_OPS = ("MatMul", "Gemm", "Conv")

Progress = Callable[[int, int, str], None]
"""Called after each candidate node as ``progress(done, total, node_label)``."""


class RewriteError(ValueError):
    """A node could not be rewritten; the message names it."""


@dataclass
class RewriteResult:
    """What :func:`rewrite_model` did."""

    model: onnx.ModelProto
    fired: Counter[str] = field(default_factory=Counter)
    """How many nodes each rule rewrote, by rule name (rules that never fired are absent: 0)."""
    layers: list[LayerRow] = field(default_factory=list)
    """One row per node with a constant weight the rules accepted, encoded or kept dense (then
    ``note`` says why)."""
    declined: list[tuple[str, str]] = field(default_factory=list)
    """``(node, reason)`` for every node a rule's pattern matched but whose check declined it (e.g.
    weights computed at run time)."""
    folded: FoldResult | None = None
    """What folding before encoding did (None when ``fold=False``)."""
    absorbed: Counter[str] = field(default_factory=Counter)
    """The standard nodes the rewritten ones absorbed, by op type (biases, activations,
    residual Adds, attention-head Reshape / Transpose pairs and their Shape chains)."""
    tile_pairs: int = 0
    """Tensors one LSCMatMul hands to others in row tiles (:mod:`lsc_ort.rewriter.tile_pairs`)."""
    attention: int = 0
    """Attention cores fused into ``LSCAttention`` (:mod:`lsc_ort.rewriter.attention`)."""
    pooling: int = 0
    """Masked mean poolings computed as a ``MatMul`` with the mask (:mod:`lsc_ort.rewriter.pooling`)."""


@dataclass(frozen=True)
class RewriteOptions:
    """What to rewrite and how (the keyword arguments of :func:`rewrite`)."""

    codec: str = AUTO
    min_sparsity: float = 0.5
    keep_negative_zeros: bool = False
    ops: tuple[str, ...] = DEFAULT_OPS
    rules: Sequence[RewriteRule] | None = None
    fold: bool = True
    """Fold BatchNormalization, per-channel Mul / Add and biases into the weights and cancel layout
    Transposes before encoding (:mod:`lsc_ort.rewriter.fold`)."""
    fuse_attention: bool = True
    """Fuse each attention core (``MatMul``, scale, mask ``Add``, ``Softmax``, ``MatMul``) into one
    ``LSCAttention`` node when the model has a layer to encode (:mod:`lsc_ort.rewriter.attention`)."""
    fuse_pooling: bool = True
    """Compute each masked mean pooling of token embeddings as a ``MatMul`` with the mask, in
    standard ops, when the model has a layer to encode (:mod:`lsc_ort.rewriter.pooling`)."""

    def validated(self) -> RewriteOptions:
        """These options, checked (raises ``ValueError`` naming a bad one) before any work."""
        select_rules(self.ops, self.rules)
        self.chooser()
        return self

    def chooser(self) -> CodecChooser:
        return CodecChooser(self.codec, self.min_sparsity, self.keep_negative_zeros)


def _op_list(ops: Iterable[str]) -> list[str]:
    return [ops] if isinstance(ops, str) else list(ops)


def select_rules(ops: Iterable[str], rules: Sequence[RewriteRule] | None = None) -> list[RewriteRule]:
    """The rules of ``rules`` (default :data:`DEFAULT_RULES`) for the op types ``ops``.

    Raises:
        ValueError: an op type no rule handles.
    """
    rules = DEFAULT_RULES if rules is None else rules
    ops = _op_list(ops)
    known = {rule.op_type for rule in rules}
    unknown = [op for op in ops if op not in known]
    if unknown:
        raise ValueError(
            f"no rewrite rule for op type(s) {', '.join(unknown)}; supported: {', '.join(sorted(known))}"
        )
    return [rule for rule in rules if rule.op_type in ops]


def _row(node: onnx.NodeProto, index: int, choice: WeightChoice, shared: bool) -> LayerRow:
    return LayerRow(
        node=node.name or f"#{index} {node.op_type}",
        op=node.op_type,
        weight=choice.name,
        shape=tuple(choice.shape),
        dtype=choice.dtype,
        sparsity=choice.sparsity,
        codec=choice.codec,
        dense_bytes=choice.dense_bytes,
        encoded_bytes=choice.encoded_bytes,
        entropy_bound_bytes=choice.entropy_bound_bytes,
        shared=shared,
        note=choice.reason,
        encoding_efficiency=choice.encoding_efficiency,
    )


def referenced_names(graph: onnx.GraphProto) -> set[str]:
    """Names read by any node of ``graph`` or its subgraphs, or produced as graph outputs."""
    used = {output.name for output in graph.output}
    for sub in iter_graphs(graph):
        for node in sub.node:
            used.update(node.input)
    return used


def remove_unused(graph: onnx.GraphProto, candidates: Iterable[str]) -> list[str]:
    """Remove the initializers and ``Constant`` nodes among ``candidates`` that nothing reads any
    more (with their graph-input and value-info entries); return the removed names."""
    unused = set(candidates) - referenced_names(graph) - {""}
    if not unused:
        return []
    removed = [t.name for t in graph.initializer if t.name in unused]
    kept = [t for t in graph.initializer if t.name not in unused]
    nodes = [
        n
        for n in graph.node
        if not (n.op_type == "Constant" and len(n.output) == 1 and n.output[0] in unused)
    ]
    removed += [
        n.output[0]
        for n in graph.node
        if n.op_type == "Constant" and len(n.output) == 1 and n.output[0] in unused
    ]
    gone = set(removed)
    for field_name, values in (
        ("initializer", kept),
        ("node", nodes),
        ("input", [v for v in graph.input if v.name not in gone]),
        ("value_info", [v for v in graph.value_info if v.name not in gone]),
    ):
        current = getattr(graph, field_name)
        if len(values) != len(current):
            graph.ClearField(field_name)
            getattr(graph, field_name).extend(values)
    return removed


def ensure_opset(model: onnx.ModelProto, domain: str = DOMAIN, version: int = OPSET_VERSION) -> None:
    """Import ``domain`` in ``model`` if it is not imported yet."""
    if not any(entry.domain == domain for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid(domain, version))


def rewrite_graph(
    model: onnx.ModelProto,
    options: RewriteOptions,
    *,
    base_dir: str | None = None,
    sink: TensorSink | None = None,
    progress: Progress | None = None,
) -> RewriteResult:
    """Rewrite ``model`` in place (the pass behind :func:`rewrite_model`); tensors that the
    model keeps stay where they are (inline or external)."""
    active = select_rules(options.ops, options.rules)
    chooser = options.chooser()
    folded = None
    if options.fold:
        folded = fold_model(model, base_dir=base_dir, sink=sink)
        model.CopyFrom(folded.model)
        folded.model = model
    ctx = GraphContext(model, TensorReader(base_dir), sink)
    result = RewriteResult(model, folded=folded)
    nodes = list(model.graph.node)
    candidates = []
    for index, node in enumerate(nodes):
        rule = next((r for r in active if r.matches(node)), None)
        if rule is not None:
            candidates.append((index, node, rule))
    replaced: dict[int, list[onnx.NodeProto]] = {}
    position = {id(node): index for index, node in enumerate(nodes)}
    touched: set[str] = set()
    for done, (index, node, rule) in enumerate(candidates, 1):
        label = node_label(node, index)
        try:
            found = rule.check(node, ctx)
            if isinstance(found, Decline):
                result.declined.append((label, found.reason))
            else:
                shared = chooser.seen(found.weight)
                choice = chooser.choose(found.weight, ctx)
                if choice.blob is None:
                    result.layers.append(_row(node, index, choice, shared))
                else:
                    # A node absorbing the ones after it takes the place of the last of them,
                    # where all its inputs (a residual, say) exist.
                    named = ctx.named(node)
                    new_nodes = rule.rewrite(named, found, choice.blob, ctx)
                    ctx.name_new_nodes(new_nodes, named.name)
                    result.layers.append(_row(named, index, choice, shared))
                    at = position[id(found.absorbs[-1])] if found.absorbs else index
                    replaced[index] = []
                    replaced[at] = new_nodes
                    result.fired[rule.name] += 1
                    touched.update(node.input)
                    for absorbed in found.absorbs:
                        result.absorbed[absorbed.op_type] += 1
                        ctx.claimed.add(id(absorbed))
                        touched.update(absorbed.input)
                        replaced.setdefault(position[id(absorbed)], [])
        except Exception as error:
            raise RewriteError(f"{label}: {error}") from error
        if progress is not None:
            progress(done, len(candidates), label)

    def take(group: tuple[onnx.NodeProto, ...]) -> bool:
        """Remove the nodes of a fused ``group`` from the graph, unless a rewrite took one of them."""
        if any(position[id(node)] in replaced for node in group):
            return False
        for node in group:
            replaced[position[id(node)]] = []
            touched.update(node.input)
        return True

    if replaced and options.fuse_attention:
        for match in find_attention(ctx):
            if not take(match.nodes):
                continue  # a product with a constant operand went to a weight rule
            last = ctx.named(match.nodes[-1])
            replaced[position[id(match.nodes[-1])]] = [attention_node(match, last)]
            result.attention += 1
            for node in match.nodes:
                result.absorbed[node.op_type] += 1
            fused = {node_label(node, position[id(node)]) for node in match.nodes}
            result.declined = [(label, reason) for label, reason in result.declined if label not in fused]
    if replaced and options.fuse_pooling:
        for pooling in find_mean_pooling(ctx):
            if not take(pooling.nodes):
                continue
            first = min(position[id(node)] for node in pooling.nodes[1:3])  # where the sums were
            replaced[first] = pooling_nodes(pooling, ctx)
            ctx.name_new_nodes(replaced[first], ctx.named(pooling.nodes[1]).name)
            result.pooling += 1
    if replaced:
        graph = model.graph
        new_nodes = [new for index, node in enumerate(nodes) for new in replaced.get(index, [node])]
        graph.ClearField("node")
        graph.node.extend(new_nodes)
        graph.initializer.extend(ctx.new_initializers)
        remove_unused(graph, touched)
        result.tile_pairs = pair_row_tiles(graph)
        ensure_opset(model)
    return result


def rewrite_model(
    model: ModelLike,
    *,
    codec: str = AUTO,
    min_sparsity: float = 0.5,
    keep_negative_zeros: bool = False,
    ops: Iterable[str] = DEFAULT_OPS,
    rules: Sequence[RewriteRule] | None = None,
    fold: bool = True,
    fuse_attention: bool = True,
    fuse_pooling: bool = True,
    base_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> RewriteResult:
    """:func:`rewrite`, also returning the fired counts, per-layer rows, declined nodes and what
    was folded."""
    options = RewriteOptions(
        codec, min_sparsity, keep_negative_zeros, tuple(_op_list(ops)), rules, fold, fuse_attention, fuse_pooling
    ).validated()
    proto, base = resolve_model(model, base_dir)
    result = rewrite_graph(proto, options, base_dir=base, progress=progress)
    load_external_tensors(proto, base)
    return result


def rewrite(
    model: ModelLike,
    *,
    codec: str = AUTO,
    min_sparsity: float = 0.5,
    keep_negative_zeros: bool = False,
    ops: Iterable[str] = DEFAULT_OPS,
    rules: Sequence[RewriteRule] | None = None,
    fold: bool = True,
    fuse_attention: bool = True,
    fuse_pooling: bool = True,
    base_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> onnx.ModelProto:
    """Replace the MatMul / Gemm / Conv nodes of ``model`` whose weights are sparse constants by
    ``LSCMatMul`` / ``LSCConv`` nodes reading the weights from encoded blobs.

    Each weight (an initializer or a ``Constant`` node) is encoded once, even when several nodes
    share it, into a uint8 initializer named ``<weight>_lsc_blob``; weights nothing else reads
    any more are removed. Each attention core becomes one ``LSCAttention`` node (unless
    ``fuse_attention=False``); the model's other nodes, tensors and metadata are unchanged; its
    opset imports gain the ``lsc_ort`` domain when a node was rewritten. See
    :mod:`lsc_ort.rewriter.rules` for the exact mapping of each op.

    Args:
        model: an ``onnx.ModelProto`` (never modified: it is copied) or the path of an ``.onnx``
            file (its external data is read one tensor at a time).
        codec: ``"auto"`` keeps, per layer, the smallest encoding over all codecs, and the dense
            op when no encoding is smaller than the dense weight; a codec name from
            :func:`lsc_ort.available_codecs` forces that codec.
        min_sparsity: layers whose weights have a smaller fraction of zeros stay dense.
        keep_negative_zeros: store weights equal to ``-0.0`` as they are (non-zeros) instead of
            as ``+0.0`` (see :class:`~lsc_ort.rewriter.choose.CodecChooser`).
        ops: the op types to rewrite.
        rules: the rules to apply (default :data:`~lsc_ort.rewriter.rules.DEFAULT_RULES`).
        fold: first fold BatchNormalization, constant per-output-channel Mul / Add / Sub / Div
            and biases into the Conv / Gemm weights and cancel layout Transposes around
            convolutions (:func:`lsc_ort.rewriter.fold.fold_model`, onnxruntime's basic-level
            optimizer); zeros stay zeros, so sparsity is kept.
        fuse_attention: when a layer is encoded, also fuse each attention core (``MatMul``,
            scale, mask ``Add``, ``Softmax``, ``MatMul``) into one ``LSCAttention`` node
            (:mod:`lsc_ort.rewriter.attention`).
        fuse_pooling: when a layer is encoded, also compute each masked mean pooling of token
            embeddings (``sum(x * mask) / clip(sum(mask))`` as torch exports it) as one ``MatMul``
            with the mask, in standard ops (:mod:`lsc_ort.rewriter.pooling`).
        base_dir: directory of the external data of an in-memory ``model`` (a path's own
            directory by default).
        progress: called after each candidate node as ``progress(done, total, node)``.

    Returns:
        The rewritten model, self-contained (tensors it keeps from external data are loaded);
        for models over 2 GB use :func:`compress_file` (``lsc-ort compress``), which streams.

    Raises:
        ValueError: bad arguments, or :class:`RewriteError` naming the node that failed.

    Example:
        >>> compressed = lsc_ort.rewrite("pruned.onnx", min_sparsity=0.8)  # doctest: +SKIP
        >>> onnx.save(compressed, "compressed.onnx")  # doctest: +SKIP
    """
    return rewrite_model(
        model,
        codec=codec,
        min_sparsity=min_sparsity,
        keep_negative_zeros=keep_negative_zeros,
        ops=ops,
        rules=rules,
        fold=fold,
        fuse_attention=fuse_attention,
        fuse_pooling=fuse_pooling,
        base_dir=base_dir,
        progress=progress,
    ).model


def compress_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    codec: str = AUTO,
    min_sparsity: float = 0.5,
    keep_negative_zeros: bool = False,
    ops: Iterable[str] = DEFAULT_OPS,
    rules: Sequence[RewriteRule] | None = None,
    fold: bool = True,
    fuse_attention: bool = True,
    fuse_pooling: bool = True,
    external_data: bool | None = None,
    progress: Progress | None = None,
) -> RewriteResult:
    """:func:`rewrite` from file to file, streaming layer by layer.

    When the input has external data (or ``external_data=True``), each blob is appended to
    ``<dst>.data`` as soon as it is encoded and the weights the model keeps are copied there one
    at a time, so peak memory stays near one layer plus the protobuf (folding with onnxruntime's
    optimizer, on by default, holds a model under 2 GB in memory once). ``dst`` is written
    atomically and left as it was on failure; ``src`` is never modified.
    """
    options = RewriteOptions(
        codec, min_sparsity, keep_negative_zeros, tuple(_op_list(ops)), rules, fold, fuse_attention, fuse_pooling
    ).validated()

    def transform(model: onnx.ModelProto, base_dir: str, sink: TensorSink) -> RewriteResult:
        return rewrite_graph(model, options, base_dir=base_dir, sink=sink, progress=progress)

    return transform_file(src, dst, transform, external_data=external_data)
