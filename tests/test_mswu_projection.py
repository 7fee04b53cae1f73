"""The MSWU projection: exact (brute force on tiny inputs), feasible, idempotent, and never
farther from the weight than magnitude pruning of blocks to the same zero fraction."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lsc_ort.mswu import (
    KERNEL,
    BlockLabel,
    apply_labels,
    assign_labels,
    block_costs,
    block_counts,
    classify_blocks,
    multiplies,
    parse_block,
    project,
    resolve_block,
)
from lsc_ort.pruning import magnitude_prune


def brute_force(prune_cost: np.ndarray, unify_cost: np.ndarray, n_prune: int, n_unify: int) -> float:
    best = np.inf
    for labels in itertools.product((0, 1, 2), repeat=prune_cost.size):
        labels_ = np.array(labels)
        if (labels_ == 2).sum() == n_prune and (labels_ == 1).sum() == n_unify:
            best = min(best, prune_cost[labels_ == 2].sum() + unify_cost[labels_ == 1].sum())
    return float(best)


@given(data=st.data())
def test_assignment_is_exact_against_brute_force(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 7))
    prune_cost = np.array(data.draw(st.lists(st.floats(0, 10), min_size=n, max_size=n)))
    unify_cost = prune_cost * np.array(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    n_prune = data.draw(st.integers(0, n))
    n_unify = data.draw(st.integers(0, n - n_prune))
    labels = assign_labels(prune_cost, unify_cost, n_prune, n_unify)
    assert (labels == BlockLabel.PRUNED).sum() == n_prune
    assert (labels == BlockLabel.UNIFIED).sum() == n_unify
    cost = prune_cost[labels == BlockLabel.PRUNED].sum() + unify_cost[labels == BlockLabel.UNIFIED].sum()
    assert cost == pytest.approx(brute_force(prune_cost, unify_cost, n_prune, n_unify), abs=1e-9)


def test_projection_of_tiny_tensors_is_the_nearest_member() -> None:
    """Over every labelling with the right counts, none is nearer than the projection."""
    rng = np.random.default_rng(3)
    for trial in range(40):
        weight = rng.standard_normal((2, 6)).astype(np.float32)
        if trial % 4 == 0:
            weight[0, :2] = [1.5, -1.5]  # an exactly unified block
        block = [(1, 2), (2, 1), (1, 3), (2, 2)][trial % 4]
        sparsity, unify = [(0.25, 0.5), (0.5, 0.5), (0.0, 0.75), (0.34, 0.0)][trial % 4]
        result = project(weight, block, sparsity, unify)
        n_prune, n_unify = block_counts(result.labels.size, sparsity, unify)
        best = np.inf
        for labels in itertools.product((0, 1, 2), repeat=result.labels.size):
            labels_ = np.array(labels, np.uint8)
            if (labels_ == 2).sum() == n_prune and (labels_ == 1).sum() == n_unify:
                member = apply_labels(weight, block, labels_)
                best = min(best, float(np.linalg.norm(member.astype(np.float64) - weight)))
        assert result.distance <= best + 1e-6


shapes = st.sampled_from([(8, 12), (7, 10), (16, 16), (3, 5), (6, 2, 3, 3), (1, 9), (5, 1), (33, 17)])
blocks = st.sampled_from([(1, 2), (1, 4), (4, 1), (2, 2), (3, 3), (1, 8), (8, 8)])


@given(shape=shapes, block=blocks, sparsity=st.floats(0, 1), share=st.floats(0, 1), seed=st.integers(0, 99))
def test_projection_is_feasible_idempotent_and_beats_block_magnitude_pruning(
    shape: tuple[int, ...], block: tuple[int, int], sparsity: float, share: float, seed: int
) -> None:
    weight = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    original = weight.copy()
    unify = (1 - sparsity) * share
    result = project(weight, block, sparsity, unify)
    np.testing.assert_array_equal(weight, original)  # input untouched
    assert result.weight.shape == weight.shape and result.weight.dtype == weight.dtype
    n_prune, n_unify = block_counts(result.labels.size, sparsity, unify)
    assert (result.pruned_blocks, result.unified_blocks) == (n_prune, n_unify)
    # Feasible: the tensor's own structure has at least the labels' pruned and unified blocks.
    actual = classify_blocks(result.weight, result.block)
    assert np.all(actual[result.labels == BlockLabel.PRUNED] == BlockLabel.PRUNED)
    assert np.all(actual[result.labels == BlockLabel.UNIFIED] != BlockLabel.FREE)
    # Idempotent.
    again = project(result.weight, block, sparsity, unify)
    np.testing.assert_array_equal(again.weight, result.weight)
    assert again.distance == 0.0
    # The nearest member: no farther than magnitude pruning of the blocks to the same zero
    # fraction, with the cheapest other blocks unified (also a member of the structure set).
    costs = block_costs(weight, block)
    baseline = np.zeros(costs.prune.size, np.uint8)
    order = np.argsort(costs.prune, kind="stable")
    baseline[order[:n_prune]] = BlockLabel.PRUNED
    rest = order[n_prune:]
    baseline[rest[np.argsort(costs.unify[rest], kind="stable")[:n_unify]]] = BlockLabel.UNIFIED
    member = apply_labels(weight, block, baseline)
    assert result.distance <= float(np.linalg.norm(member.astype(np.float64) - weight)) + 1e-5


def test_one_by_one_blocks_are_magnitude_pruning() -> None:
    weight = np.random.default_rng(0).standard_normal((20, 30)).astype(np.float32)
    for sparsity in (0.0, 0.5, 0.9):
        result = project(weight, (1, 1), sparsity, 1 - sparsity)  # a single weight is always unified
        np.testing.assert_array_equal(result.weight, magnitude_prune(weight, sparsity))


def test_unified_blocks_share_one_magnitude_and_keep_signs() -> None:
    weight = np.random.default_rng(1).standard_normal((12, 16)).astype(np.float32)
    result = project(weight, "1x4", 0.25, 0.5)
    blocks = result.weight.reshape(12, 4, 4)
    original = weight.reshape(12, 4, 4)
    for (i, j) in zip(*np.nonzero(result.labels == BlockLabel.UNIFIED), strict=True):
        magnitude = np.abs(blocks[i, j])
        assert np.all(magnitude == magnitude[0])
        assert magnitude[0] == np.float32(np.abs(original[i, j]).astype(np.float64).mean())
        assert np.all(np.sign(blocks[i, j]) == np.where(original[i, j] < 0, -1, 1))
    pruned = result.labels == BlockLabel.PRUNED
    assert np.all(blocks[pruned] == 0) and not np.signbit(blocks[pruned]).any()
    free = result.labels == BlockLabel.FREE
    np.testing.assert_array_equal(blocks[free], original[free])


def test_edge_blocks_conv_kernels_and_dtypes() -> None:
    rng = np.random.default_rng(2)
    conv = rng.standard_normal((8, 3, 3, 3)).astype(np.float16)
    result = project(conv, KERNEL, 0.5, 0.25)
    assert result.block == (1, 9) and result.labels.shape == (8, 3) and result.weight.dtype == np.float16
    assert classify_blocks(result.weight, KERNEL)[result.labels == BlockLabel.UNIFIED].min() >= BlockLabel.UNIFIED
    edge = rng.standard_normal((7, 10))  # float64, partial blocks at the right and bottom edges
    result = project(edge, (3, 4), 0.3, 0.4)
    assert result.labels.shape == (3, 3)
    assert np.array_equal(project(result.weight, (3, 4), 0.3, 0.4).weight, result.weight)
    assert resolve_block((100, 100), (7, 10)) == (7, 10)  # clamped


def test_multiplies_count_one_per_unified_block() -> None:
    weight = np.zeros((4, 8), np.float32)
    weight[0, :4] = [1, -1, 1, 1]      # unified: 1 multiply
    weight[1, 4:] = [1, 2, 0, 3]       # free: 3 multiplies
    weight[2, :4] = 5                  # unified: 1
    assert multiplies(weight, (1, 4)) == 5


@pytest.mark.parametrize(
    "spec,expected", [("1x4", (1, 4)), ("4X1", (4, 1)), (" 2x2 ", (2, 2)), ("kernel", KERNEL), ((3, 1), (3, 1))]
)
def test_parse_block(spec: object, expected: object) -> None:
    assert parse_block(spec) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", ["0x4", "1x", "x4", "big", (0, 1), (1.5, 2), "1x4x2"])
def test_bad_blocks(spec: object) -> None:
    with pytest.raises(ValueError, match="block"):
        parse_block(spec)  # type: ignore[arg-type]


def test_bad_arguments() -> None:
    weight = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="sparsity must be in"):
        project(weight, (1, 2), 1.5, 0.0)
    with pytest.raises(ValueError, match="at most 1"):
        project(weight, (1, 2), 0.6, 0.6)
    with pytest.raises(ValueError, match="float"):
        project(weight.astype(np.int8), (1, 2), 0.5, 0.0)
    with pytest.raises(ValueError, match="kernel"):
        project(weight, KERNEL, 0.5, 0.0)
    with pytest.raises(ValueError, match="labels"):
        apply_labels(weight, (1, 2), np.zeros(3, np.uint8))


@given(weight=hnp.arrays(np.float32, (6, 8), elements=st.floats(-4, 4, width=32)),
       sparsity=st.floats(0, 1), share=st.floats(0, 1))
def test_projection_handles_ties_and_zeros(weight: np.ndarray, sparsity: float, share: float) -> None:
    result = project(weight, (1, 4), sparsity, (1 - sparsity) * share)
    assert np.array_equal(project(result.weight, (1, 4), sparsity, (1 - sparsity) * share).weight, result.weight)


def test_core_package_never_imports_torch() -> None:
    code = ("import sys, lsc_ort, lsc_ort.mswu, lsc_ort.pruning, lsc_ort.cli; "
            "lsc_ort.encode(__import__('numpy').ones(4, 'float32'), 'mswu'); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_without_torch_is_a_clear_error() -> None:
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import lsc_ort.train\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "lsc_ort.train needs PyTorch" in out and "lsc-ort[train]" in out
