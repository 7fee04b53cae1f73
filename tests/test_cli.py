"""The lsc-ort command line, through lsc_ort.cli.main: exit codes, output, files."""

from __future__ import annotations

import re
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
    assert "2 of 2 layers encoded" in out
    assert "entropy bound" in out and "file:" in out and "rewritten nodes: gemm 1, matmul 1" in out
    assert "absorbed into them: 1 Relu" in out and "handed on in row tiles: 1 tensor(s)" in out
    text = report.read_text()
    assert text.startswith("# lsc-ort compress") and "| # | node | op | shape |" in text and "| fc1 |" in text

    code, out, _ = run(capsys, "inspect", out_path)
    assert code == 0 and "LSCMatMul" in out and "2 of 2 layers encoded" in out

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
    assert code == 0 and "csr" in out and "1 of 1 layers encoded" in out
    code, out, _ = run(
        capsys, "compress", model_path, "-o", tmp_path / "b.onnx", "--min-sparsity", "0.95", "-v"
    )
    assert code == 0 and "0 of 2 layers encoded" in out and "below min_sparsity" in out
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
    assert "5 of 5 layers encoded" in out
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
def test_help(command: str, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and "examples:" in out and f"lsc-ort {command}" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_top_level_help(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "lsc-ort compress" in out and "exit codes" in out
    assert max(len(line) for line in out.splitlines()) <= 80
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


# --- output that fits 80 columns -----------------------------------------------------------------

LONG = "/encoder/layer.{}/attention/self/{}/MatMul"


@pytest.fixture
def long_names_path(tmp_path: Path) -> Path:
    """A model whose node and weight names are far longer than an 80-column table leaves them."""
    nodes, inits, x = [], [], "x"
    for i, part in enumerate(["query", "key", "value", "output_projection_of_the_block"]):
        name = LONG.format(i // 2, part)
        weight = f"encoder.layer.{i // 2}.attention.self.{part}.weight_matrix_with_a_long_name"
        inits.append(onnx.numpy_helper.from_array(sparse((64, 64), 0.9, seed=i), weight))
        nodes.append(onnx.helper.make_node("MatMul", [x, weight], [f"h{i}"], name=name))
        x = f"h{i}"
    graph = onnx.helper.make_graph(
        nodes,
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64])],
        [onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [1, 64])],
        inits,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / "a-model-with-long-names.onnx"
    onnx.save_model(model, path)
    return path


def column_slices(out: str, header: str, line_with: str) -> list[str]:
    """The text of the column headed ``header`` (left-aligned) on each line below the header line
    that contains ``line_with``, up to the table's end."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if header in line and line_with in line and "─" not in line)
    head = lines[start]
    left = head.index(header)
    rest = head[left + len(header) :]
    right = left + len(header) + len(rest) - len(rest.lstrip()) if rest.strip() else len(head) + 1000
    slices = []
    for line in lines[start + 2 :]:
        if not line.strip() or line.startswith(("total", "    total")):
            break
        slices.append(line[left:right].rstrip())
    return slices


def shown_whole(name: str, slices: list[str], prefix: str = "") -> bool:
    """Whether ``name`` (less ``prefix``) is the concatenation of consecutive slices (wrapped)."""
    target = name.removeprefix(prefix)
    return any("".join(slices[i:j]) == target for i in range(len(slices)) for j in range(i + 1, len(slices) + 1))


def stripped_prefix(out: str) -> str:
    found = re.search(r"names without their common prefix (\S+)\)", out)
    return found.group(1) if found else ""


def assert_fits(out: str, width: int = 80) -> None:
    from rich.cells import cell_len

    assert "…" not in out, out
    too_wide = [line for line in out.splitlines() if cell_len(line) > width]
    assert not too_wide, "\n".join(too_wide)


def test_tables_fit_80_columns(long_names_path: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    names = [n.name for n in onnx.load(long_names_path).graph.node]
    weights = [t.name for t in onnx.load(long_names_path).graph.initializer]
    compressed = tmp_path / "a-compressed-model-with-a-long-file-name.onnx"
    for argv, verbose in (
        (["compress", long_names_path, "-o", compressed], False),
        (["compress", long_names_path, "-o", compressed, "-v"], True),
        (["inspect", compressed], False),
        (["inspect", compressed, "-v"], True),
    ):
        code, out, err = run(capsys, *argv)
        assert (code, err) == (0, "")
        assert_fits(out)
        slices = column_slices(out, "node", "op")
        assert all(shown_whole(name, slices, stripped_prefix(out)) for name in names), out
        assert ("dense B" in out and "bound B" in out and "weight" in out) == verbose
        if verbose:  # split into blocks; the weight names are whole too
            slices = column_slices(out, "weight", "node")
            assert all(shown_whole(w, slices) or shown_whole(f"{w}_lsc_blob", slices) for w in weights), out

    code, out, _ = run(capsys, "verify", long_names_path, compressed, *ENGINE)
    assert code == 0 and "OK" in out
    assert_fits(out)
    code, out, _ = run(capsys, "prune", long_names_path, "-o", tmp_path / "pruned.onnx", "--sparsity", "0.95")
    assert code == 0
    assert_fits(out)
    slices = column_slices(out, "weight", "shape")
    assert all(shown_whole(w, slices, stripped_prefix(out)) for w in weights), out
    slices = column_slices(out, "used by", "weight")
    assert all(shown_whole(name, slices) for name in names), out
    code, out, _ = run(capsys, "decompress", compressed, "-o", tmp_path / "restored.onnx")
    assert code == 0
    assert_fits(out)


def test_demo_fits_80_columns(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "demo", "--workdir", tmp_path, "-v")
    assert code == 0
    assert_fits(out)
    assert "dense B" in out and "conv1" in out and "fc3" in out


def test_piped_output_keeps_each_row_on_one_line(long_names_path: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run(capsys, "compress", long_names_path, "-o", tmp_path / "c.onnx", "-v")
    assert code == 0 and "…" not in out
    for node in onnx.load(long_names_path).graph.node:
        (line,) = [line for line in out.splitlines() if node.name in line]  # whole, and once
        assert "MatMul" in line and "×" in line
    assert "names without their common prefix" not in out  # names are shown in full


def test_fitted_table_splits_into_blocks() -> None:
    from rich.console import Console

    from lsc_ort.report import Column, FittedTable

    columns = [Column("name", lambda i, r: r, key=True, wrap=True)]
    columns += [Column(f"c{k}", lambda i, r, k=k: f"{k * 111111:,}", numeric=True) for k in range(1, 10)]
    table = FittedTable(columns, ["alpha", "beta"])
    console = Console(width=40, record=True)
    with console.capture() as capture:
        console.print(table)
    out = capture.get()
    assert_fits(out, 40)
    assert out.count("name") == len(table.blocks(40)) > 2  # the key column starts every block
    assert all(f"c{k}" in out for k in range(1, 10)) and out.count("alpha") == len(table.blocks(40))


# --- small things a new user meets -----------------------------------------------------------------


def test_version(capsys) -> None:
    import lsc_ort

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith(f"lsc-ort {lsc_ort.__version__} (onnx ")


def test_decompress_says_how_much_larger(model_path: Path, tmp_path: Path, capsys) -> None:
    assert run(capsys, "compress", model_path, "-o", tmp_path / "c.onnx")[0] == 0
    code, out, _ = run(capsys, "decompress", tmp_path / "c.onnx", "-o", tmp_path / "d.onnx")
    before, after = (tmp_path / "c.onnx").stat().st_size, (tmp_path / "d.onnx").stat().st_size
    assert code == 0 and f"{before:,} B → " in out and f"{after:,} B ({after / before:.2f}× larger)" in out
    assert cli.size_change(100, 100) == "same size" and cli.size_change(800, 100) == "8.00× smaller"


def test_prune_of_a_compressed_model_says_why_nothing_was_pruned(model_path: Path, tmp_path: Path, capsys) -> None:
    assert run(capsys, "compress", model_path, "-o", tmp_path / "c.onnx")[0] == 0
    code, out, _ = run(capsys, "prune", tmp_path / "c.onnx", "-o", tmp_path / "p.onnx", "--sparsity", "0.9")
    assert code == 0 and "nothing pruned" in out and "already compressed" in out and "2 LSCMatMul" in out
    assert "decompress" in out and (tmp_path / "p.onnx").is_file()


@pytest.mark.parametrize("command", ["compress", "inspect", "verify", "decompress", "prune"])
@pytest.mark.parametrize("content", [b"", b"\x08\x01garbage"])
def test_empty_or_junk_models_are_refused(command: str, content: bytes, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    argv = {
        "compress": ["compress", bad, "-o", tmp_path / "out.onnx"],
        "inspect": ["inspect", bad],
        "verify": ["verify", bad, bad],
        "decompress": ["decompress", bad, "-o", tmp_path / "out.onnx"],
        "prune": ["prune", bad, "-o", tmp_path / "out.onnx", "--sparsity", "0.5"],
    }[command]
    code, _, err = run(capsys, *argv)
    assert code == 2 and f"{bad}: " in err and ("empty" in err or "not an ONNX model" in err), err
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


@pytest.mark.parametrize(
    "output,message",
    [
        ("", "the output path is empty"),
        ("outdir", "output outdir is a directory; give a file path"),
        ("nowhere/out.onnx", "does not exist"),
    ],
)
def test_output_path_errors_name_the_path(
    output: str, message: str, model_path: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outdir").mkdir()
    for argv in (
        ["compress", model_path, "-o", output],
        ["decompress", model_path, "-o", output],
        ["prune", model_path, "-o", output, "--sparsity", "0.5"],
        ["compress", model_path, "-o", "ok.onnx", "--report", output],
    ):
        code, _, err = run(capsys, *argv)
        expected = message.replace("output", "report") if "--report" in argv else message
        assert code == 2 and expected in err, err
        assert ".tmp" not in err and "Errno" not in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "outdir"]


def test_write_failures_name_the_path(model_path: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    import lsc_ort.rewriter.atomic as atomic

    def read_only(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / ".x.onnx.lsc-ort-1-abc.tmp"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    code, _, err = run(capsys, "compress", model_path, "-o", tmp_path / "x.onnx")
    assert code == 2 and err == f"lsc-ort: error: cannot write {tmp_path / 'x.onnx'}: Permission denied\n"


def test_an_input_directory_says_what_it_is(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "inspect", tmp_path)
    assert code == 2 and f"{tmp_path}: is a directory, not an ONNX model file" in err
