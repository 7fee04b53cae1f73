"""Shared test configuration: a deterministic hypothesis profile and common fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "deterministic",
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("thorough", parent=settings.get_profile("deterministic"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


def sparse_array(shape: tuple[int, ...], sparsity: float, dtype: type = np.float32,
                 seed: int = 0) -> np.ndarray:
    """A seeded random array with ``round(sparsity * size)`` elements set to +0.0."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    if np.dtype(dtype) == np.int8:
        values = rng.integers(-127, 128, size=size).astype(np.int8)
        values[values == 0] = 1
    else:
        values = rng.standard_normal(size).astype(dtype)
        values[values == 0] = 1
    zeros = rng.choice(size, round(sparsity * size), replace=False)
    values[zeros] = 0
    return values.reshape(shape)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(params=["sliced", "sliced-windows", "windowed"])
def gemv(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every layout for one or two rows: LSC_ORT_GEMV overrides the per-CPU choice (windowed
    slices or the windowed layout where gathers are slow). A variant without that kernel runs the
    sliced one."""
    monkeypatch.setenv("LSC_ORT_GEMV", request.param)
    return str(request.param)


@pytest.fixture(params=["avx512", "avx2", "scalar"])
def isa(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every kernel variant this CPU has: LSC_ORT_ISA caps the instruction set kernels are chosen
    for (a variant the CPU lacks is skipped)."""
    from lsc_ort import native

    monkeypatch.setenv("LSC_ORT_ISA", request.param)
    if not native.kernel_name().endswith(request.param):
        pytest.skip(f"this CPU has no {request.param}")
    yield request.param
