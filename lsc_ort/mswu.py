"""MSWU: micro-structured weight unification and pruning (Lin et al., arXiv 2106.08301).

The matrix view ``[R, C]`` of a weight (see :mod:`lsc_ort.format`) is cut into blocks of
``block_rows x block_cols`` (edge blocks hold only the elements inside the matrix). A block is

* **pruned**: all its weights are zero;
* **unified**: all its weights share one magnitude ``a`` and keep their signs, so the block is
  stored as one value plus sign bits and multiplies its inputs once (``a * sum(±x)``);
* **free**: anything.

The structure set ``S(n_p, n_u)`` holds the tensors with (at least) ``n_p`` pruned and ``n_u``
further unified blocks. :func:`project` returns the nearest tensor of that set in Euclidean
distance, the Z-step of ADMM training (:mod:`lsc_ort.train`), and the label of every block.

This module needs numpy only; it is the core of ``lsc-ort prune --method mswu`` and of the
training package.
"""

from __future__ import annotations

import enum
import heapq
import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from lsc_ort.codecs.blocks import block_grid, check_block, fit_block
from lsc_ort.format import matrix_shape

KERNEL = "kernel"
"""Block spec meaning one whole convolution kernel: ``(1, kH * kW)`` of a Conv weight's view."""

BlockSpec = tuple[int, int] | str
"""A block shape ``(rows, cols)``, a string ``"1x4"``, or :data:`KERNEL`."""

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_BLOCK_TEXT = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


class BlockLabel(enum.IntEnum):
    """The label of one block, as :func:`project` returns it."""

    FREE = 0
    UNIFIED = 1
    PRUNED = 2


def parse_block(spec: BlockSpec) -> tuple[int, int] | str:
    """``"1x4"`` -> ``(1, 4)``; ``"kernel"`` stays :data:`KERNEL`; a pair is checked.

    Raises:
        ValueError: not ``RxC`` with positive ints, a pair of positive ints, or ``"kernel"``.
    """
    if isinstance(spec, str):
        if spec.strip().lower() == KERNEL:
            return KERNEL
        match = _BLOCK_TEXT.match(spec)
        if not match:
            raise ValueError(f"block must look like 1x4, 4x1, 2x2 or be 'kernel', got {spec!r}")
        spec = (int(match.group(1)), int(match.group(2)))
    return check_block(spec, "mswu", "'RxC' or 'kernel'")


def resolve_block(spec: BlockSpec, shape: tuple[int, ...]) -> tuple[int, int]:
    """The block shape in the matrix view of a tensor of ``shape``, clamped to the matrix.

    :data:`KERNEL` is ``(1, prod(shape[2:]))``: one kernel of a Conv weight ``[M, C/g, kH, kW]``.
    """
    block = parse_block(spec)
    rows, cols = matrix_shape(shape)
    if block == KERNEL:
        if len(shape) < 3:
            raise ValueError(f"block 'kernel' needs a convolution weight (rank >= 3), got shape {list(shape)}")
        block = (1, int(np.prod(shape[2:], dtype=np.int64)))
    assert isinstance(block, tuple)
    return fit_block(block, rows, cols)


def block_counts(num_blocks: int, sparsity: float, unify: float) -> tuple[int, int]:
    """``(pruned, unified)`` block counts: ``round(sparsity * n)`` and ``round(unify * n)``, the
    latter reduced when rounding would pass ``n``.

    Raises:
        ValueError: a fraction outside [0, 1] or ``sparsity + unify > 1``.
    """
    for name, value in (("sparsity", sparsity), ("unify", unify)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if sparsity + unify > 1.0 + 1e-9:
        raise ValueError(f"sparsity + unify must be at most 1, got {sparsity} + {unify}")
    pruned = min(num_blocks, round(sparsity * num_blocks))
    return pruned, min(num_blocks - pruned, round(unify * num_blocks))


@dataclass(frozen=True)
class Projection:
    """What :func:`project` returns."""

    weight: np.ndarray
    """The nearest tensor of the structure set: same shape and dtype as the input."""
    labels: np.ndarray
    """uint8 ``[nbr, nbc]``: the :class:`BlockLabel` of every block of the matrix view."""
    block: tuple[int, int]
    """The block shape used, in the matrix view (clamped to the matrix)."""
    distance: float
    """``||weight - input||`` (computed in float64)."""

    def count(self, label: BlockLabel) -> int:
        return int(np.count_nonzero(self.labels == label))

    @property
    def pruned_blocks(self) -> int:
        return self.count(BlockLabel.PRUNED)

    @property
    def unified_blocks(self) -> int:
        return self.count(BlockLabel.UNIFIED)

    @property
    def free_blocks(self) -> int:
        return self.count(BlockLabel.FREE)


@dataclass(frozen=True)
class BlockCosts:
    """Per-block squared distances of the three choices (free costs 0), in float64."""

    prune: np.ndarray
    """``||b||^2``."""
    unify: np.ndarray
    """``sum_i (|b_i| - a)^2`` with ``a = mean |b_i|``, i.e. ``||b||^2 - (sum |b_i|)^2 / n``."""
    magnitude: np.ndarray
    """``a``: the shared magnitude of the unified block."""


def _blocks(matrix: np.ndarray, block: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``[nblocks, br*bc]`` float64 blocks of a matrix (edges zero-padded) and the valid mask."""
    rows, cols = matrix.shape
    br, bc = block
    nbr, nbc = block_grid(rows, cols, block)
    padded = np.zeros((nbr * br, nbc * bc), dtype=np.float64)
    padded[:rows, :cols] = matrix
    valid = np.zeros((nbr * br, nbc * bc), dtype=bool)
    valid[:rows, :cols] = True

    def tile(a: np.ndarray) -> np.ndarray:
        return a.reshape(nbr, br, nbc, bc).swapaxes(1, 2).reshape(nbr * nbc, br * bc)

    return tile(padded), tile(valid)


def _unblock(blocks: np.ndarray, rows: int, cols: int, block: tuple[int, int]) -> np.ndarray:
    br, bc = block
    nbr, nbc = block_grid(rows, cols, block)
    return blocks.reshape(nbr, nbc, br, bc).swapaxes(1, 2).reshape(nbr * br, nbc * bc)[:rows, :cols]


def _costs(blocks: np.ndarray, valid: np.ndarray) -> BlockCosts:
    magnitude_of = np.abs(blocks)
    count = np.maximum(valid.sum(axis=1), 1)
    mean = magnitude_of.sum(axis=1) / count
    # A block whose magnitudes are all equal is unified exactly: keep that magnitude bit-exact.
    high = np.where(valid, magnitude_of, -np.inf).max(axis=1, initial=-np.inf)
    low = np.where(valid, magnitude_of, np.inf).min(axis=1, initial=np.inf)
    mean = np.where(high == low, np.maximum(high, 0.0), mean)
    deviation = np.where(valid, magnitude_of - mean[:, None], 0.0)
    return BlockCosts(prune=np.square(blocks).sum(axis=1), unify=np.square(deviation).sum(axis=1),
                      magnitude=mean)


def block_costs(weight: ArrayLike, block: BlockSpec) -> BlockCosts:
    """The cost of pruning and of unifying each block of ``weight`` (row-major block order)."""
    array = np.asarray(weight)
    rows, cols = matrix_shape(array.shape)
    blocks, valid = _blocks(array.reshape(rows, cols), resolve_block(block, array.shape))
    return _costs(blocks, valid)


def _running_k_smallest_sums(values: np.ndarray, k: int, stop: int) -> np.ndarray:
    """``out[t - k]`` = sum of the ``k`` smallest of ``values[:t]``, for ``t`` in ``[k, stop]``.

    A max-heap keeps the ``k`` smallest seen so far; only elements below its maximum can
    enter, and the heap's maximum never grows, so elements at or above the first maximum are
    skipped without a Python step.
    """
    out = np.empty(stop - k + 1, dtype=np.float64)
    if k == 0:
        out[:] = 0.0
        return out
    heap = [-float(v) for v in values[:k]]
    heapq.heapify(heap)
    total = float(np.sum(values[:k]))
    out[0] = total
    tail = values[k:stop]
    candidates = np.flatnonzero(tail < -heap[0])
    changes_at = np.empty(candidates.size, dtype=np.int64)
    changes_to = np.empty(candidates.size, dtype=np.float64)
    used = 0
    for position, value in zip(candidates.tolist(), tail[candidates].tolist(), strict=True):
        if value < -heap[0]:
            total += value + heapq.heapreplace(heap, -value)
            changes_at[used] = position + 1
            changes_to[used] = total
            used += 1
    # Forward-fill: out[t - k] is the total after the last change at or before position t - k.
    steps = np.zeros(stop - k + 1, dtype=np.int64)
    np.add.at(steps, changes_at[:used], 1)
    last = np.cumsum(steps) - 1
    if used:
        out[1:] = np.where(last[1:] >= 0, changes_to[np.maximum(last[1:], 0)], out[0])
    else:
        out[1:] = out[0]
    return out


def assign_labels(prune_cost: np.ndarray, unify_cost: np.ndarray, n_prune: int, n_unify: int) -> np.ndarray:
    """Labels minimizing ``sum(prune_cost[P]) + sum(unify_cost[U])`` with ``|P| = n_prune`` and
    ``|U| = n_unify`` (disjoint; every other block is free at cost 0). Exact.

    Why a sort on cost differences is exact: let ``d = prune_cost - unify_cost`` and rank the
    blocks by ``(d, index)``. In an optimal labelling, if a pruned block ``i`` ranks above a
    unified block ``j`` (so ``d_i >= d_j``), swapping their labels changes the cost by
    ``d_j - d_i <= 0``: the result is still optimal, and the sum of the ranks of the pruned
    blocks strictly drops, so repeated swaps end. Hence some optimal labelling has every pruned
    block ranked below every unified block: there is a split ``t`` with ``P`` inside the first
    ``t`` ranks and ``U`` inside the rest. For a fixed ``t`` the two sides are independent, and
    the best choice takes the ``n_prune`` smallest ``prune_cost`` of the prefix and the
    ``n_unify`` smallest ``unify_cost`` of the suffix (free blocks cost 0). Every such choice is
    feasible, so the minimum over ``t`` in ``[n_prune, n - n_unify]`` is the optimum.
    Running sums of the ``k`` smallest (one heap per side) make it ``O(n log n)``.
    """
    n = int(prune_cost.size)
    if n_prune < 0 or n_unify < 0 or n_prune + n_unify > n:
        raise ValueError(f"cannot prune {n_prune} and unify {n_unify} of {n} blocks")
    labels = np.full(n, BlockLabel.FREE, dtype=np.uint8)
    if n_unify == 0:
        labels[np.argsort(prune_cost, kind="stable")[:n_prune]] = BlockLabel.PRUNED
        return labels
    if n_prune == 0:
        labels[np.argsort(unify_cost, kind="stable")[:n_unify]] = BlockLabel.UNIFIED
        return labels
    order = np.argsort(prune_cost - unify_cost, kind="stable")
    p, u = prune_cost[order], unify_cost[order]
    prefix = _running_k_smallest_sums(p, n_prune, n - n_unify)  # t = n_prune .. n - n_unify
    suffix = _running_k_smallest_sums(u[::-1], n_unify, n - n_prune)[::-1]  # same t, reversed
    t = n_prune + int(np.argmin(prefix + suffix))
    labels[order[:t][np.argsort(p[:t], kind="stable")[:n_prune]]] = BlockLabel.PRUNED
    labels[order[t:][np.argsort(u[t:], kind="stable")[:n_unify]]] = BlockLabel.UNIFIED
    return labels


def apply_labels(weight: ArrayLike, block: BlockSpec, labels: np.ndarray) -> np.ndarray:
    """The nearest tensor to ``weight`` whose blocks obey ``labels``: pruned blocks become
    ``+0.0``; unified blocks become ``sign(w) * mean|w|`` (``+`` for zeros); free blocks stay."""
    array = np.asarray(weight)
    if array.dtype not in _FLOATS:
        raise ValueError(f"MSWU needs a float weight, got {array.dtype}")
    rows, cols = matrix_shape(array.shape)
    resolved = resolve_block(block, array.shape)
    blocks, valid = _blocks(array.reshape(rows, cols), resolved)
    flat = np.asarray(labels, dtype=np.uint8).reshape(-1)
    if flat.size != blocks.shape[0]:
        raise ValueError(f"{flat.size} labels for {blocks.shape[0]} blocks of {resolved[0]}x{resolved[1]}")
    return _apply(array, blocks, valid, _costs(blocks, valid).magnitude, flat, resolved)


def _apply(array: np.ndarray, blocks: np.ndarray, valid: np.ndarray, magnitude: np.ndarray,
           labels: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    rows, cols = matrix_shape(array.shape)
    out = blocks.copy()
    unified = labels == BlockLabel.UNIFIED
    shared = magnitude[unified].astype(array.dtype).astype(np.float64)[:, None]
    out[unified] = np.where(blocks[unified] < 0, -shared, shared) * valid[unified]
    out[labels == BlockLabel.PRUNED] = 0.0
    return np.ascontiguousarray(_unblock(out, rows, cols, block)).astype(array.dtype).reshape(array.shape)


def project(weight: ArrayLike, block: BlockSpec = (1, 4), sparsity: float = 0.5,
            unify: float = 0.0) -> Projection:
    """The Euclidean projection of ``weight`` onto the MSWU structure set.

    Exactly ``round(sparsity * n)`` of the ``n`` blocks are pruned and ``round(unify * n)``
    others unified, chosen to minimize ``||W - projection||`` (:func:`assign_labels`). The input
    is never modified. Projecting a projection returns it unchanged.

    Args:
        weight: a float16 / float32 / float64 tensor, seen as its matrix view ``[R, C]``.
        block: the block shape in the matrix view (``(1, 4)``, ``"4x1"``, ...), or
            :data:`KERNEL` for whole convolution kernels. Clamped to the matrix.
        sparsity: fraction of all blocks pruned, in [0, 1].
        unify: fraction of all blocks unified, in [0, 1 - sparsity].

    Raises:
        ValueError: a non-float weight, a bad block or bad fractions.
    """
    array = np.asarray(weight)
    if array.dtype not in _FLOATS:
        raise ValueError(f"MSWU needs a float weight, got {array.dtype}")
    rows, cols = matrix_shape(array.shape)
    resolved = resolve_block(block, array.shape)
    nbr, nbc = block_grid(rows, cols, resolved)
    n_prune, n_unify = block_counts(nbr * nbc, sparsity, unify)
    blocks, valid = _blocks(array.reshape(rows, cols), resolved)
    costs = _costs(blocks, valid)
    labels = assign_labels(costs.prune, costs.unify, n_prune, n_unify)
    projected = _apply(array, blocks, valid, costs.magnitude, labels, resolved)
    distance = float(np.linalg.norm(projected.astype(np.float64) - array.astype(np.float64)))
    return Projection(weight=projected, labels=labels.reshape(nbr, nbc), block=resolved, distance=distance)


def classify_blocks(weight: ArrayLike, block: BlockSpec) -> np.ndarray:
    """The labels a tensor already satisfies: ``PRUNED`` for all-zero blocks, ``UNIFIED`` for
    blocks whose non-zero magnitudes are all equal (and with no zeros), else ``FREE``."""
    array = np.asarray(weight)
    rows, cols = matrix_shape(array.shape)
    resolved = resolve_block(block, array.shape)
    nbr, nbc = block_grid(rows, cols, resolved)
    blocks, valid = _blocks(array.reshape(rows, cols), resolved)
    magnitude_of = np.abs(blocks)
    high = np.where(valid, magnitude_of, -np.inf).max(axis=1, initial=-np.inf)
    low = np.where(valid, magnitude_of, np.inf).min(axis=1, initial=np.inf)
    labels = np.full(nbr * nbc, BlockLabel.FREE, dtype=np.uint8)
    labels[(high == low) & (high > 0)] = BlockLabel.UNIFIED
    labels[high <= 0] = BlockLabel.PRUNED
    return labels.reshape(nbr, nbc)


def multiplies(weight: ArrayLike, block: BlockSpec) -> int:
    """Multiplications of one product with ``weight`` when every unified block costs one
    multiply (its signed inputs are summed, then scaled) and every other non-zero one."""
    array = np.asarray(weight)
    labels = classify_blocks(array, block).reshape(-1)
    rows, cols = matrix_shape(array.shape)
    blocks, _ = _blocks(array.reshape(rows, cols), resolve_block(block, array.shape))
    free = labels == BlockLabel.FREE
    return int(np.count_nonzero(blocks[free])) + int(np.count_nonzero(labels == BlockLabel.UNIFIED))
