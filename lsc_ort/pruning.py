"""One-shot magnitude pruning of MatMul / Gemm / Conv weights, to try lsc-ort on any model."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

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

METHODS = ("magnitude",)
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


def prune_graph(
    model: onnx.ModelProto,
    sparsity: float,
    *,
    method: str = "magnitude",
    ops: Iterable[str] = DEFAULT_OPS,
    base_dir: str | None = None,
    sink: TensorSink | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> PruneResult:
    """Prune ``model`` in place (the pass behind :func:`prune`)."""
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; available: {', '.join(METHODS)}")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    ops = [ops] if isinstance(ops, str) else list(ops)
    unknown = sorted(set(ops) - set(_WEIGHT_INPUT))
    if unknown:
        raise ValueError(
            f"cannot prune op type(s) {', '.join(unknown)}; supported: {', '.join(_WEIGHT_INPUT)}"
        )
    ctx = GraphContext(model, TensorReader(base_dir), sink)
    users: dict[str, list[str]] = {}
    for index, node in enumerate(model.graph.node):
        if node.op_type in ops and is_standard(node) and len(node.input) > _WEIGHT_INPUT[node.op_type]:
            weight = ctx.constant(node.input[_WEIGHT_INPUT[node.op_type]])
            if weight is not None and weight.dtype in _FLOATS and len(weight.shape) >= 2:
                users.setdefault(weight.name, []).append(node_label(node, index))
    result = PruneResult(model)
    positions = {tensor.name: i for i, tensor in enumerate(model.graph.initializer)}
    for done, (name, nodes) in enumerate(users.items(), 1):
        weight = ctx.constant(name)
        if weight is None:
            continue
        try:
            array = ctx.read(weight)
            pruned = magnitude_prune(array, sparsity)
        except ValueError as error:
            raise RewriteError(f"{nodes[0]}: {error}") from error
        zeros_before = int(np.count_nonzero(array == 0))
        result.weights.append(
            PrunedWeight(
                name, tuple(nodes), tuple(array.shape), zeros_before, int(np.count_nonzero(pruned == 0))
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
) -> PruneResult:
    """:func:`prune`, also returning the pruned weights."""
    proto, base = resolve_model(model, base_dir)
    result = prune_graph(proto, sparsity, method=method, ops=ops, base_dir=base)
    load_external_tensors(proto, base)
    return result


def prune(
    model: ModelLike,
    sparsity: float,
    *,
    method: str = "magnitude",
    ops: Iterable[str] = DEFAULT_OPS,
    base_dir: str | os.PathLike | None = None,
) -> onnx.ModelProto:
    """One-shot magnitude pruning of the constant weights of MatMul (input 1), Gemm (B) and Conv (W).

    Each weight tensor (initializer or ``Constant`` node, of rank >= 2) is pruned once, even when
    shared, with a per-tensor threshold: exactly ``round(sparsity * size)`` elements of smallest
    magnitude become +0.0. A pruned weight is pruned for every op that reads it.

    Args:
        model: an ``onnx.ModelProto`` (never modified) or a path.
        sparsity: fraction of each weight to zero, in [0, 1].
        method: ``"magnitude"`` (the only method so far).
        ops: the op types whose weights are pruned.
        base_dir: directory of the external data of an in-memory ``model``.
    """
    return prune_model(model, sparsity, method=method, ops=ops, base_dir=base_dir).model


def prune_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    sparsity: float,
    *,
    method: str = "magnitude",
    ops: Iterable[str] = DEFAULT_OPS,
    external_data: bool | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> PruneResult:
    """:func:`prune` from file to file, one weight at a time; atomic, ``src`` never modified."""
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; available: {', '.join(METHODS)}")

    def transform(model: onnx.ModelProto, base_dir: str, sink: TensorSink) -> PruneResult:
        return prune_graph(
            model, sparsity, method=method, ops=ops, base_dir=base_dir, sink=sink, progress=progress
        )

    return transform_file(src, dst, transform, external_data=external_data)
