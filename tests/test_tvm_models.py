"""Whole rewritten models compiled with TVM on llvm match onnxruntime on the same compressed
model within 1e-4 relative: MiniLM-L3 (18 LSCMatMul, symbolic batch and sequence) and a
LeNet-5 CNN (LSCConv, LSCMatMul from Gemm with transB and bias). (Magika is left out: TVM
0.27's ONNX importer rejects its dynamic Reshape, dense or compressed.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from lsc_ort.demo import build_lenet
from lsc_ort.rewriter import decompress
from tests.rewrite_fixtures import (  # noqa: F401  (session fixtures)
    NATIVE,
    assert_close,
    minilm_path,
    run_ort,
)
from tests.test_models import Compressed, prune_and_compress
from tests.tvm_helpers import compiled, tvm_schedules


def onnxruntime_outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime on the compressed model (native custom ops), or, without the native library,
    on its decompressed twin (the same weights, bit for bit, in standard ops)."""
    model = onnx.load(path)
    return run_ort(model if NATIVE else decompress(model), feeds)


def assert_matches_onnxruntime(models: Compressed, feeds: dict[str, np.ndarray], **shapes: list[int | str]) -> None:
    executable = compiled(models.compressed.read_bytes(), "cpu", shapes or None)
    outputs = tvm_schedules.run(executable, feeds)
    expected = onnxruntime_outputs(models.compressed, feeds)
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected, strict=True):
        assert got.dtype == want.dtype
        assert_close(got, want, tolerance=1e-4)


@pytest.fixture(scope="module")
def minilm(minilm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Compressed:  # noqa: F811
    return prune_and_compress(minilm_path, tmp_path_factory.mktemp("minilm-tvm"))


@pytest.fixture(scope="module")
def lenet(tmp_path_factory: pytest.TempPathFactory) -> Compressed:
    workdir = tmp_path_factory.mktemp("lenet-tvm")
    onnx.save(build_lenet(seed=0), workdir / "lenet.onnx")
    return prune_and_compress(workdir / "lenet.onnx", workdir)


def test_minilm_matches_onnxruntime(minilm: Compressed) -> None:
    rng = np.random.default_rng(0)
    for batch, sequence in [(1, 16), (2, 24)]:  # one compiled model, symbolic dims
        ids = rng.integers(0, 1000, (batch, sequence)).astype(np.int64)
        assert_matches_onnxruntime(minilm, {"input_ids": ids, "attention_mask": np.ones_like(ids)})


def test_minilm_lsc_layers_all_compiled(minilm: Compressed) -> None:
    from tvm_schedules.kernels import kernel_spec

    mod = tvm_schedules.from_onnx(onnx.load(minilm.compressed))
    kernels = {gvar.name_hint for gvar, func in mod.functions_items() if kernel_spec(func) is not None}
    assert kernels == {"lsc_matmul_384x384", "lsc_matmul_384x1536", "lsc_matmul_1536x384"}
    assert mod.script(show_meta=False).count("R.call_tir(cls.lsc_matmul_") == 18


def test_lenet_matches_onnxruntime(lenet: Compressed) -> None:
    counts = [node.op_type for node in onnx.load(lenet.compressed).graph.node]
    assert counts.count("LSCConv") == 2 and counts.count("LSCMatMul") == 3
    x = np.random.default_rng(1).standard_normal((4, 1, 28, 28)).astype(np.float32)
    assert_matches_onnxruntime(lenet, {"image": x})
