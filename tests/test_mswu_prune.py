"""One-shot MSWU pruning of ONNX models (lsc-ort prune --method mswu) and compressing the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import lsc_ort
from lsc_ort.cli import main
from lsc_ort.mswu import BlockLabel, block_counts, classify_blocks
from lsc_ort.pruning import prune_model
from lsc_ort.rewriter import rewrite
from tests.rewrite_fixtures import NATIVE, constant_values, parse, sparse

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'
ENGINE = [] if NATIVE else ["--engine", "reference"]


def model() -> onnx.ModelProto:
    return parse(
        f"""{HEADER} g (float[N,32] a, float[N,4,8,8] x) => (float[N,24] y1, float[N,16] y2, float[N,24] y3,
                                                            float[N,8,6,6] c) {{
        y1 = MatMul(a, W)
        y2 = Gemm <transB=1> (a, G)
        y3 = Gemm (a, H)
        c = Conv(x, K)
    }}""",
        W=sparse((32, 24), 0.0, seed=1), G=sparse((16, 32), 0.0, seed=2), H=sparse((32, 24), 0.0, seed=3),
        K=sparse((8, 4, 3, 3), 0.0, seed=4),
    )


def test_blocks_are_outputs_by_inputs_in_every_op() -> None:
    result = prune_model(model(), 0.5, method="mswu", block="1x4", unify=0.3)
    blocks = {w.name: w.block for w in result.weights}
    # MatMul and Gemm without transB store [K, N]: 1x4 (outputs x inputs) is 4x1 there.
    assert blocks == {"W": (4, 1), "G": (1, 4), "H": (4, 1), "K": (1, 4)}
    values = constant_values(result.model)
    for weight in result.weights:
        labels = classify_blocks(values[weight.name], weight.block)
        n_prune, n_unify = block_counts(labels.size, 0.5, 0.3)
        assert (labels == BlockLabel.PRUNED).sum() >= n_prune
        assert (labels == BlockLabel.UNIFIED).sum() >= n_unify
        assert weight.blocks == labels.size and weight.unified_blocks == n_unify
    kernels = prune_model(model(), 0.5, method="mswu", block="kernel", unify=0.25, ops=["Conv"])
    assert kernels.weights[0].block == (1, 9)


def test_bad_arguments_name_the_problem() -> None:
    with pytest.raises(ValueError, match="kernel' applies to Conv"):
        prune_model(model(), 0.5, method="mswu", block="kernel", unify=0.2)
    with pytest.raises(ValueError, match="at most 1"):
        prune_model(model(), 0.6, method="mswu", unify=0.5)
    with pytest.raises(ValueError, match="unify applies to method 'mswu'"):
        prune_model(model(), 0.6, unify=0.2)
    with pytest.raises(ValueError, match="block"):
        prune_model(model(), 0.6, method="mswu", block="1by4")


def test_compress_keeps_unified_layers_with_few_zeros() -> None:
    """Only 30 % zeros, but 60 % of the blocks unified: the weights stored as one value per block
    count as zeros for --min-sparsity, and the mswu codec stores the layer."""
    pruned = prune_model(model(), 0.3, method="mswu", block="1x4", unify=0.6).model
    rewritten = rewrite(pruned, min_sparsity=0.5)
    codecs = {t.name: lsc_ort.inspect(onnx.numpy_helper.to_array(t))["codec"]
              for t in rewritten.graph.initializer if t.name.endswith("_lsc_blob")}
    assert set(codecs.values()) == {"mswu"} and len(codecs) == 4
    dense = rewrite(prune_model(model(), 0.3).model, min_sparsity=0.5)
    assert not any(t.name.endswith("_lsc_blob") for t in dense.graph.initializer)


def test_cli_prune_compress_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, pruned, compressed = tmp_path / "m.onnx", tmp_path / "u.onnx", tmp_path / "c.onnx"
    onnx.save_model(model(), src)
    code = main(["prune", str(src), "-o", str(pruned), "--method", "mswu", "--block", "1x4", "--sparsity", "0.6",
                 "--unify", "0.3"])
    out = capsys.readouterr().out
    assert code == 0 and "unify 0.3, block 1x4" in out and "unified" in out and "30.2%" in out
    assert main(["compress", str(pruned), "-o", str(compressed)]) == 0
    assert "mswu" in capsys.readouterr().out
    x = {"a": (2, 32), "x": (2, 4, 8, 8)}
    shapes = [f"--shape={name}={','.join(map(str, shape))}" for name, shape in x.items()]
    assert main(["verify", str(pruned), str(compressed), *shapes, *ENGINE]) == 0
    assert "OK: 4 output(s)" in capsys.readouterr().out
    code = main(["prune", str(src), "-o", str(tmp_path / "bad.onnx"), "--method", "mswu", "--sparsity", "0.8",
                 "--unify", "0.5"])
    assert code == 2 and "at most 1" in capsys.readouterr().err
    arrays = constant_values(onnx.load(pruned))
    assert np.count_nonzero(arrays["W"] == 0) == 4 * round(0.6 * 192)  # 4x1 blocks of [32, 24]
