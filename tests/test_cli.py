"""The lsc-ort command line, through lsc_ort.cli.main: exit codes, output, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from lsc_ort import cli
from lsc_ort.cli import main
from lsc_ort.demo import build_lenet
from tests.rewrite_fixtures import NATIVE, constant_values, parse, sparse

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'
ENGINE = [] if NATIVE else ["--engine", "reference"]


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    model = parse(
        f"""{HEADER} g (float[N,64] a) => (float[N,32] y) {{
        h = Gemm <transB=1> (a, W1, B1)
        r = Relu(h)
        y = MatMul(r, W2)
    }}""",
        W1=sparse((48, 64), 0.9, seed=1),
        B1=np.ones(48, np.float32),
        W2=sparse((48, 32), 0.9, seed=2),
    )
    model.graph.node[0].name = "fc1"
    model.graph.node[2].name = "fc2"
    path = tmp_path / "model.onnx"
    onnx.save_model(model, path)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_compress_inspect_verify_decompress(model_path: Path, tmp_path: Path, capsys) -> None:
    out_path, report = tmp_path / "lsc.onnx", tmp_path / "report.md"
    code, out, err = run(capsys, "compress", model_path, "-o", out_path, "--report", report)
    assert (code, err) == (0, "")
    assert "fc1" in out and "fc2" in out and "Gemm" in out and "MatMul" in out
    assert "total (2/2 encoded)" in out
    assert "entropy bound" in out and "file:" in out and "rewritten nodes: gemm 1, matmul 1" in out
    text = report.read_text()
    assert text.startswith("# lsc-ort compress") and "| # | node | op | shape |" in text and "| fc1 |" in text

    code, out, _ = run(capsys, "inspect", out_path)
    assert code == 0 and "LSCMatMul" in out and "total (2/2 encoded)" in out

    code, out, _ = run(capsys, "verify", model_path, out_path, *ENGINE)
    assert code == 0 and "OK: 1 output(s)" in out and "a 1×64 float32" in out

    restored = tmp_path / "restored.onnx"
    code, out, _ = run(capsys, "decompress", out_path, "-o", restored)
    assert code == 0 and "decompressed 2 node(s)" in out
    values, original = constant_values(onnx.load(restored)), constant_values(onnx.load(model_path))
    for name in ("W1", "W2"):
        assert values[name].tobytes() == original[name].tobytes()
    code, out, _ = run(capsys, "verify", model_path, restored)  # standard ops: no native library needed
    assert code == 0


def test_compress_options(model_path: Path, tmp_path: Path, capsys) -> None:
    code, out, _ = run(
        capsys, "compress", model_path, "-o", tmp_path / "a.onnx", "--codec", "csr", "--ops", "MatMul"
    )
    assert code == 0 and "csr" in out and "total (1/1 encoded)" in out
    code, out, _ = run(
        capsys, "compress", model_path, "-o", tmp_path / "b.onnx", "--min-sparsity", "0.95", "-v"
    )
    assert code == 0 and "total (0/2 encoded)" in out and "below min_sparsity" in out
    code, _, _ = run(capsys, "compress", model_path, "-o", tmp_path / "c.onnx", "--external-data", "yes")
    assert code == 0 and (tmp_path / "c.onnx.data").is_file()


def test_codec_choices_follow_the_registry(
    model_path: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "compress", model_path, "-o", tmp_path / "x.onnx", "--codec", "xyz")
    assert code == 2 and "invalid choice: 'xyz'" in err
    monkeypatch.setattr(cli, "available_codecs", lambda: ["csr", "xyz"])
    parsed = cli.build_parser().parse_args(["compress", "m.onnx", "-o", "o.onnx", "--codec", "xyz"])
    assert parsed.codec == "xyz"


def test_verify_mismatch_exits_1(model_path: Path, tmp_path: Path, capsys) -> None:
    other = onnx.load(model_path)
    other.graph.initializer[2].CopyFrom(onnx.numpy_helper.from_array(sparse((48, 32), 0.9, seed=7), "W2"))
    onnx.save_model(other, tmp_path / "other.onnx")
    code, out, _ = run(capsys, "verify", model_path, tmp_path / "other.onnx")
    assert code == 1 and "MISMATCH" in out and "FAIL" in out


def test_verify_inputs_file_shape_and_rtol(model_path: Path, tmp_path: Path, capsys) -> None:
    compressed = tmp_path / "lsc.onnx"
    assert run(capsys, "compress", model_path, "-o", compressed)[0] == 0
    np.savez(tmp_path / "in.npz", a=np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32))
    code, out, _ = run(capsys, "verify", model_path, compressed, "--inputs", tmp_path / "in.npz", *ENGINE)
    assert code == 0 and "a 5×64 float32" in out
    code, out, _ = run(
        capsys, "verify", model_path, compressed, "--shape", "a=3,64", "--rtol", "0", "--seed", "4", *ENGINE
    )
    assert code in (0, 1) and "a 3×64 float32" in out and "rtol 0" in out
    np.savez(tmp_path / "bad.npz", b=np.ones(3))
    code, _, err = run(capsys, "verify", model_path, compressed, "--inputs", tmp_path / "bad.npz")
    assert code == 2 and "lacks input(s) a" in err
    code, _, err = run(capsys, "verify", model_path, compressed, "--shape", "x=1,2")
    assert code == 2 and "unknown input(s) x" in err


def test_verify_without_the_native_library(
    model_path: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    compressed = tmp_path / "lsc.onnx"
    assert run(capsys, "compress", model_path, "-o", compressed)[0] == 0

    def missing() -> str:
        raise FileNotFoundError("the lsc-ort native library is not built")

    monkeypatch.setattr("lsc_ort.native.get_library_path", missing)
    code, out, err = run(capsys, "verify", model_path, compressed)
    assert code == 2 and "--engine reference" in err and "Traceback" not in err
    code, out, _ = run(capsys, "verify", model_path, compressed, "--engine", "reference")
    assert code == 0 and "OK" in out


def test_prune(model_path: Path, tmp_path: Path, capsys) -> None:
    dense = onnx.load(model_path)
    for tensor in dense.graph.initializer:
        tensor.CopyFrom(
            onnx.numpy_helper.from_array(
                np.random.default_rng(0).standard_normal(tuple(tensor.dims)).astype(np.float32), tensor.name
            )
        )
    onnx.save_model(dense, tmp_path / "dense.onnx")
    code, out, _ = run(
        capsys, "prune", tmp_path / "dense.onnx", "-o", tmp_path / "p.onnx", "--sparsity", "0.75"
    )
    assert code == 0 and "pruned 2 weight tensor(s)" in out and "75.0%" in out
    values = constant_values(onnx.load(tmp_path / "p.onnx"))
    assert np.count_nonzero(values["W1"] == 0) == 0.75 * 48 * 64
    assert np.count_nonzero(values["B1"] == 0) == 0
    code, _, err = run(capsys, "prune", tmp_path / "dense.onnx", "-o", tmp_path / "q.onnx", "--sparsity", "2")
    assert code == 2 and "must be in [0, 1]" in err


def test_demo(tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, "demo", "--workdir", tmp_path)
    assert (code, err) == (0, "")
    for step in ("1. build", "2. prune", "3. compress", "4. verify", "OK: 1 output(s)"):
        assert step in out
    assert "total (5/5 encoded)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lenet5-lsc.onnx",
        "lenet5-pruned.onnx",
        "lenet5-report.md",
        "lenet5.onnx",
    ]


def test_demo_model_is_deterministic() -> None:
    assert build_lenet(0) == build_lenet(0)
    assert {n.op_type for n in build_lenet().graph.node} >= {"Conv", "Gemm", "MatMul"}


@pytest.mark.parametrize("command", ["compress", "inspect", "verify", "decompress", "prune", "demo"])
def test_help(command: str, capsys) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and "examples:" in out and f"lsc-ort {command}" in out


def test_top_level_help(capsys) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "lsc-ort compress" in out and "exit codes" in out
    assert run(capsys)[0] == 2  # a command is required


@pytest.mark.parametrize(
    "argv,message",
    [
        (["compress", "missing.onnx", "-o", "out.onnx"], "missing.onnx: no such file"),
        (["inspect", "missing.onnx"], "missing.onnx: no such file"),
        (["verify", "missing.onnx", "other.onnx"], "missing.onnx: no such file"),
        (["decompress", "missing.onnx", "-o", "out.onnx"], "missing.onnx: no such file"),
    ],
)
def test_user_errors_are_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("lsc-ort: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out.onnx").exists()


def test_not_an_onnx_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"\xff\xfe not a protobuf")
    code, _, err = run(capsys, "compress", tmp_path / "junk.onnx", "-o", tmp_path / "out.onnx")
    assert code == 2 and "not a readable ONNX model" in err


def test_output_over_input_is_refused(model_path: Path, capsys) -> None:
    before = model_path.read_bytes()
    code, _, err = run(capsys, "compress", model_path, "-o", model_path)
    assert code == 2 and "would overwrite the input" in err
    assert model_path.read_bytes() == before


def test_failure_keeps_the_previous_output(
    model_path: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_path = tmp_path / "out.onnx"
    out_path.write_bytes(b"previous")
    before = model_path.read_bytes()

    def boom(*args: object, **kwargs: object) -> bytes:
        raise ValueError("encoder exploded")

    monkeypatch.setattr("lsc_ort.rewriter.choose.encode", boom)
    code, _, err = run(capsys, "compress", model_path, "-o", out_path)
    assert code == 2 and "node 'fc1' (Gemm): encoder exploded" in err
    assert out_path.read_bytes() == b"previous"
    assert model_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "out.onnx"]
    with pytest.raises(ValueError, match="encoder exploded"):
        main(["--debug", "compress", str(model_path), "-o", str(out_path)])


def test_compare_outputs_notes_nan_and_checks_integers() -> None:
    from lsc_ort.verify import compare_outputs

    nan = np.array([1.0, np.nan], np.float32)
    (diff,) = compare_outputs({"y": nan}, {"y": nan.copy()})
    assert diff.ok and "NaN in both at 1 of 2" in diff.note
    (diff,) = compare_outputs({"y": nan}, {"y": np.array([1.0, 2.0], np.float32)})
    assert not diff.ok
    (diff,) = compare_outputs({"i": np.array([1, 2])}, {"i": np.array([1, 3])})
    assert not diff.ok and diff.max_abs == 1.0
    (diff,) = compare_outputs({"y": np.ones(3, np.float32)}, {"y": np.ones(3, np.float32) * (1 + 1e-5)})
    assert diff.ok and diff.max_rel == pytest.approx(5e-6, rel=1e-2)
    (diff,) = compare_outputs({"y": np.ones(3, np.float32)}, {"y": np.ones(4, np.float32)})
    assert not diff.ok and "shape" in diff.note


def test_random_inputs_for_transformer_like_models() -> None:
    from lsc_ort.verify import random_inputs

    model = onnx.parser.parse_model(f"""{HEADER} g (int64[batch,seq] input_ids,
        int64[batch,seq] attention_mask, int64[batch,seq] token_type_ids, int64[batch,seq] position_ids,
        float[batch,3,H,W] pixels, bool[4] flags) => (float[1] y) {{
        y = Constant <value = float[1] {{0}}> ()
    }}""")
    feeds = random_inputs(model, seed=0)
    assert feeds["input_ids"].shape == (1, 16) and feeds["input_ids"].dtype == np.int64
    assert 0 <= feeds["input_ids"].min() and feeds["input_ids"].max() < 100
    assert (feeds["attention_mask"] == 1).all() and (feeds["token_type_ids"] == 0).all()
    assert feeds["position_ids"].tolist() == [list(range(16))]
    assert feeds["pixels"].shape == (1, 3, 32, 32) and feeds["pixels"].dtype == np.float32
    assert feeds["flags"].dtype == np.bool_
    assert random_inputs(model, shapes={"pixels": [2, 3, 8, 8]})["pixels"].shape == (2, 3, 8, 8)
