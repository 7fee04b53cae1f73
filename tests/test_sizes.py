"""Size targets of the encodings against the entropy bound and the baselines."""

from __future__ import annotations

import numpy as np
import pytest

import lsc_ort
from lsc_ort.entropy import binary_entropy
from tests.conftest import sparse_array

# ADMM-LeNet (LSC paper): layer shape and fraction of weights kept.
ADMM_LENET = [((20, 1, 5, 5), 0.20), ((50, 20, 5, 5), 0.08), ((500, 800), 0.009), ((10, 500), 0.07)]


def test_lsc_near_entropy_bound_and_below_baselines_at_90_percent() -> None:
    weight = sparse_array((1024, 1024), 0.9, seed=0)
    bound = lsc_ort.entropy_bound(weight)
    lsc = len(lsc_ort.encode(weight, "lsc"))
    assert lsc <= 1.10 * bound
    for baseline in ("csr", "relidx", "bitmap"):
        assert lsc < len(lsc_ort.encode(weight, baseline)), baseline


def test_admm_lenet_profile_compresses_at_least_55x() -> None:
    rng = np.random.default_rng(0)
    dense = total = 0
    bound = 0.0
    for shape, kept in ADMM_LENET:
        size = int(np.prod(shape))
        weight = np.zeros(size, np.float32)
        positions = rng.choice(size, round(kept * size), replace=False)
        weight[positions] = rng.standard_normal(positions.size).astype(np.float32)
        weight = weight.reshape(shape)
        blob = lsc_ort.encode(weight, "lsc")
        np.testing.assert_array_equal(lsc_ort.decode(blob), weight)
        dense += weight.nbytes
        total += len(blob)
        bound += lsc_ort.entropy_bound(weight)
    assert dense / bound == pytest.approx(58.5, abs=0.2)
    assert dense / total >= 55.0


@pytest.mark.parametrize("sparsity", [0.5, 0.7, 0.95, 0.99])
def test_lsc_tracks_the_bound_across_sparsities(sparsity: float) -> None:
    weight = sparse_array((512, 768), sparsity, seed=1)
    assert len(lsc_ort.encode(weight, "lsc")) <= 1.10 * lsc_ort.entropy_bound(weight) + 1024


def test_lsc_block_layer_exploits_structured_sparsity() -> None:
    """Pruned 4x4 tiles: the block layer drops them for far less than an unstructured mask."""
    rng = np.random.default_rng(2)
    tiles = rng.random((64, 64)) < 0.2
    mask = np.kron(tiles, np.ones((4, 4), dtype=bool))
    weight = np.where(mask, rng.standard_normal((256, 256)), 0.0).astype(np.float32)
    blob = lsc_ort.encode(weight, "lsc")
    info = lsc_ort.inspect(blob)
    assert info["params"]["block_rows"] > 1
    assert len(blob) < len(lsc_ort.encode(weight, "bitmap"))
    assert len(blob) < lsc_ort.entropy_bound(weight)  # below the unstructured bound


def test_auto_parameters_match_the_best_explicit_block() -> None:
    weight = sparse_array((300, 200), 0.85, seed=4)
    auto = len(lsc_ort.encode(weight, "lsc"))
    explicit = [len(lsc_ort.encode(weight, "lsc", block=b)) for b in [(1, 1), (1, 4), (1, 200), (4, 4)]]
    assert auto <= min(explicit) * 1.01


def test_relidx_fillers_grow_with_sparsity() -> None:
    weight = sparse_array((256, 256), 0.99, seed=5)
    four = lsc_ort.encode(weight, "relidx", bits=4)
    eight = lsc_ort.encode(weight, "relidx", bits=8)
    assert lsc_ort.inspect(four)["sections"]["values"] > lsc_ort.inspect(eight)["sections"]["values"]


def test_entropy_bound_formula() -> None:
    weight = sparse_array((100, 100), 0.75)
    expected = (10_000 * binary_entropy(0.25) + 2_500 * 32) / 8
    assert lsc_ort.entropy_bound(weight) == pytest.approx(expected)
    assert lsc_ort.entropy_bound(np.zeros((3, 3), np.float16)) == 0.0
    assert lsc_ort.entropy_bound(np.ones(8, np.int8)) == 8.0
