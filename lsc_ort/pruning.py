"""One-shot pruning of MatMul / Gemm / Conv weights, to try lsc-ort on any model: magnitude
pruning, or MSWU (micro-structured unification and pruning, :mod:`lsc_ort.mswu`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from lsc_ort import mswu
from lsc_ort.rewriter.compress import DEFAULT_OPS, RewriteError
from lsc_ort.rewriter.graph import GraphContext, is_standard, node_label
from lsc_ort.rewriter.model_io import (
    ModelLike,
    TensorReader,
    TensorSink,
    load_external_tensors,
    resolve_model,
    transform_file,
)

METHODS = ("magnitude", "mswu")
DEFAULT_BLOCK = "1x4"
_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def magnitude_prune(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """A copy of ``weight`` whose ``round(sparsity * size)`` smallest-magnitude elements are +0.0.

    Raises:
        ValueError: ``sparsity`` outside [0, 1] or a non-float weight.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    if weight.dtype not in _FLOATS:
        raise ValueError(f"magnitude pruning needs a float weight, got {weight.dtype}")
    flat = np.array(weight, copy=True).reshape(-1)
    k = round(sparsity * flat.size)
    if k >= flat.size:
        flat[:] = 0
    elif k > 0:
        magnitude = np.abs(flat)
        flat[np.argpartition(magnitude, k - 1)[:k]] = 0
    return flat.reshape(weight.shape)


@dataclass(frozen=True)
class PrunedWeight:
    """One pruned weight tensor."""

    name: str
    nodes: tuple[str, ...]
    shape: tuple[int, ...]
    zeros_before: int
    zeros_after: int
    block: tuple[int, int] | None = None
    """MSWU: the block shape in the stored weight's matrix view."""
    unified_blocks: int = 0
    """MSWU: blocks unified (one magnitude, signs kept)."""
    blocks: int = 0
    """MSWU: all blocks of the weight."""

    @property
    def sparsity(self) -> float:
        size = int(np.prod(self.shape, dtype=np.int64))
        return self.zeros_after / size if size else 0.0


@dataclass
class PruneResult:
    """What :func:`prune_model` did."""

    model: onnx.ModelProto
    weights: list[PrunedWeight] = field(default_factory=list)


_WEIGHT_INPUT = {"MatMul": 1, "Gemm": 1, "Conv": 1}


def stored_block(block: mswu.BlockSpec, node: onnx.NodeProto) -> mswu.BlockSpec:
    """An MSWU block given as outputs x inputs (PyTorch's ``[out, in]`` layout) in the matrix view
    of ``node``'s stored weight: MatMul and Gemm without ``transB`` store ``[K, N]`` (inputs x
    outputs), so the block is transposed; Gemm with ``transB=1`` and Conv store ``[out, in]``."""
    parsed = mswu.parse_block(block)
    if parsed == mswu.KERNEL:
        if node.op_type != "Conv":
            raise ValueError(f"block 'kernel' applies to Conv weights, not to {node.op_type}")
        return parsed
    assert isinstance(parsed, tuple)
    trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
    if node.op_type == "MatMul" or (node.op_type == "Gemm" and not trans_b):
        return parsed[1], parsed[0]
    return parsed


def check_method(method: str, block: mswu.BlockSpec, unify: float, sparsity: float) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; available: {', '.join(METHODS)}")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    if method == "magnitude" and unify:
        raise ValueError("unify applies to method 'mswu' only")
    if method == "mswu":
        mswu.parse_block(block)
        mswu.block_counts(0, sparsity, unify)


def prune_graph(
    model: onnx.ModelProto,
    sparsity: float,
    *,
    method: str = "magnitude",
    ops: Iterable[str] = DEFAULT_OPS,
    base_dir: str | None = None,
    sink: TensorSink | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    block: mswu.BlockSpec = DEFAULT_BLOCK,
    unify: float = 0.0,
) -> PruneResult:
    """Prune ``model`` in place (the pass behind :func:`prune`)."""
    check_method(method, block, unify, sparsity)
    ops = [ops] if isinstance(ops, str) else list(ops)
    unknown = sorted(set(ops) - set(_WEIGHT_INPUT))
    if unknown:
        raise ValueError(
            f"cannot prune op type(s) {', '.join(unknown)}; supported: {', '.join(_WEIGHT_INPUT)}"
        )
    ctx = GraphContext(model, TensorReader(base_dir), sink)
    users: dict[str, list[str]] = {}
    first_user: dict[str, onnx.NodeProto] = {}
    for index, node in enumerate(model.graph.node):
        if node.op_type in ops and is_standard(node) and len(node.input) > _WEIGHT_INPUT[node.op_type]:
            weight = ctx.constant(node.input[_WEIGHT_INPUT[node.op_type]])
            if weight is not None and weight.dtype in _FLOATS and len(weight.shape) >= 2:
                users.setdefault(weight.name, []).append(node_label(node, index))
                first_user.setdefault(weight.name, node)
    result = PruneResult(model)
    positions = {tensor.name: i for i, tensor in enumerate(model.graph.initializer)}
    for done, (name, nodes) in enumerate(users.items(), 1):
        weight = ctx.constant(name)
        if weight is None:
            continue
        projection = None
        try:
            array = ctx.read(weight)
            if method == "mswu":
                projection = mswu.project(array, stored_block(block, first_user[name]), sparsity, unify)
                pruned = projection.weight
            else:
                pruned = magnitude_prune(array, sparsity)
        except ValueError as error:
            raise RewriteError(f"{nodes[0]}: {error}") from error
        zeros_before = int(np.count_nonzero(array == 0))
        result.weights.append(
            PrunedWeight(
                name, tuple(nodes), tuple(array.shape), zeros_before, int(np.count_nonzero(pruned == 0)),
                block=projection.block if projection else None,
                unified_blocks=projection.unified_blocks if projection else 0,
                blocks=int(projection.labels.size) if projection else 0,
            )
        )
        del array
        if weight.node is None:
            model.graph.initializer[positions[name]].CopyFrom(ctx.sink.make(name, pruned))
        else:
            weight.node.attribute[0].t.CopyFrom(numpy_helper.from_array(pruned, weight.tensor.name))
        if progress is not None:
            progress(done, len(users), nodes[0])
    return result


def prune_model(
    model: ModelLike,
    sparsity: float,
    *,
    method: str = "magnitude",
    ops: Iterable[str] = DEFAULT_OPS,
    base_dir: str | os.PathLike | None = None,
    block: mswu.BlockSpec = DEFAULT_BLOCK,
    unify: float = 0.0,
) -> PruneResult:
    """:func:`prune`, also returning the pruned weights."""
    proto, base = resolve_model(model, base_dir)
    result = prune_graph(proto, sparsity, method=method, ops=ops, base_dir=base, block=block, unify=unify)
    load_external_tensors(proto, base)
    return result


def prune(
    model: ModelLike,
    sparsity: float,
    *,
    method: str = "magnitude",
    ops: Iterable[str] = DEFAULT_OPS,
    base_dir: str | os.PathLike | None = None,
    block: mswu.BlockSpec = DEFAULT_BLOCK,
    unify: float = 0.0,
) -> onnx.ModelProto:
    """One-shot pruning of the constant weights of MatMul (input 1), Gemm (B) and Conv (W).

    Each weight tensor (initializer or ``Constant`` node, of rank >= 2) is pruned once, even when
    shared, and for every op that reads it.

    * ``method="magnitude"``: exactly ``round(sparsity * size)`` elements of smallest magnitude
      become +0.0 (a per-tensor threshold).
    * ``method="mswu"``: the weight is cut into ``block``-shaped blocks; ``round(sparsity * n)``
      of its ``n`` blocks are pruned and ``round(unify * n)`` others unified (one shared
      magnitude, signs kept), chosen to stay nearest to the weight (:func:`lsc_ort.mswu.project`).

    Args:
        model: an ``onnx.ModelProto`` (never modified) or a path.
        sparsity: fraction of each weight (magnitude) or of its blocks (mswu) to zero, in [0, 1].
        method: ``"magnitude"`` or ``"mswu"``.
        ops: the op types whose weights are pruned.
        base_dir: directory of the external data of an in-memory ``model``.
        block: mswu block as outputs x inputs, e.g. ``"1x4"`` (4 consecutive inputs of one
            output, PyTorch's ``[out, in]`` layout whatever the op stores), or ``"kernel"``
            (one whole Conv kernel).
        unify: mswu: fraction of the blocks unified, in [0, 1 - sparsity].
    """
    return prune_model(model, sparsity, method=method, ops=ops, base_dir=base_dir, block=block, unify=unify).model


def prune_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    sparsity: float,
    *,
    method: str = "magnitude",
    ops: Iterable[str] = DEFAULT_OPS,
    external_data: bool | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    block: mswu.BlockSpec = DEFAULT_BLOCK,
    unify: float = 0.0,
) -> PruneResult:
    """:func:`prune` from file to file, one weight at a time; atomic, ``src`` never modified."""
    check_method(method, block, unify, sparsity)

    def transform(model: onnx.ModelProto, base_dir: str, sink: TensorSink) -> PruneResult:
        return prune_graph(
            model, sparsity, method=method, ops=ops, base_dir=base_dir, sink=sink, progress=progress,
            block=block, unify=unify,
        )

    return transform_file(src, dst, transform, external_data=external_data)
