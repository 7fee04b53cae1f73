"""Models with external data: read and written one tensor at a time; atomic writes."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.external_data_helper import uses_external_data

from lsc_ort.pruning import prune_file
from lsc_ort.rewriter import compress_file, decompress, decompress_file, rewrite, rewrite_model
from lsc_ort.rewriter.model_io import save_model
from tests.rewrite_fixtures import assert_same_outputs, constant_values, random_feeds, sparse

LAYERS, WIDTH = 8, 256


def mlp(layers: int = LAYERS, width: int = WIDTH, sparsity: float = 0.9) -> onnx.ModelProto:
    """A chain of MatMul + Relu layers with ``width × width`` weights, plus a dense embedding."""
    nodes, inits = [], []
    x = "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array(sparse((width, width), sparsity, seed=i) * 0.1, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"h{i}"], name=f"layer{i}"))
        nodes.append(helper.make_node("Relu", [f"h{i}"], [f"r{i}"]))
        x = f"r{i}"
    inits.append(numpy_helper.from_array(np.ones((1,), np.float32), "scale"))
    nodes.append(helper.make_node("Mul", [x, "scale"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, width])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, width])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def save_external(model: onnx.ModelProto, path: Path) -> Path:
    """Save a copy of ``model`` (onnx.save_model converts what it saves) with every tensor external."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    onnx.save_model(
        model,
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=path.name + ".weights",
        size_threshold=0,
    )
    return path


def external_tensors(path: Path) -> list[str]:
    model = onnx.load_model(path, load_external_data=False)
    return [t.name for t in model.graph.initializer if uses_external_data(t)]


def test_external_data_round_trip(tmp_path: Path) -> None:
    model = mlp()
    (tmp_path / "in").mkdir()
    src = save_external(model, tmp_path / "in" / "model.onnx")
    before = {p.name: p.read_bytes() for p in src.parent.iterdir()}
    dst = tmp_path / "out" / "compressed.onnx"
    dst.parent.mkdir()
    result = compress_file(src, dst)
    assert result.fired == {"matmul": LAYERS}
    assert sorted(p.name for p in dst.parent.iterdir()) == ["compressed.onnx", "compressed.onnx.data"]
    assert sorted(external_tensors(dst)) == sorted(["scale", *(f"w{i}_lsc_blob" for i in range(LAYERS))])
    assert {p.name: p.read_bytes() for p in src.parent.iterdir()} == before  # the input is untouched
    compressed = onnx.load_model(dst)
    assert_same_outputs(model, compressed, random_feeds(model))
    restored_path = tmp_path / "out" / "restored.onnx"
    decompress_file(dst, restored_path)
    assert len(external_tensors(restored_path)) == LAYERS + 1
    restored = constant_values(onnx.load_model(restored_path))
    for name, value in constant_values(model).items():
        assert restored[name].tobytes() == value.tobytes()


def test_rewrite_of_a_path_is_self_contained(tmp_path: Path) -> None:
    model = mlp(layers=2)
    src = save_external(model, tmp_path / "model.onnx")
    out = rewrite(src)
    assert not any(uses_external_data(t) for t in out.graph.initializer)
    assert constant_values(out)["scale"].tobytes() == constant_values(model)["scale"].tobytes()
    assert_same_outputs(model, out, random_feeds(model))
    assert decompress(out) is not None


def test_in_memory_model_with_base_dir(tmp_path: Path) -> None:
    model = mlp(layers=2)
    src = save_external(model, tmp_path / "model.onnx")
    proto = onnx.load_model(src, load_external_data=False)
    assert rewrite_model(proto, base_dir=tmp_path).fired == {"matmul": 2}


def test_inline_input_can_be_forced_to_external_output(tmp_path: Path) -> None:
    model = mlp(layers=2)
    onnx.save_model(model, tmp_path / "model.onnx")
    compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx", external_data=True)
    assert (tmp_path / "out.onnx.data").is_file()
    assert len(external_tensors(tmp_path / "out.onnx")) == 2
    compress_file(tmp_path / "model.onnx", tmp_path / "inline.onnx")
    assert not (tmp_path / "inline.onnx.data").exists()


def test_external_input_can_be_forced_inline(tmp_path: Path) -> None:
    model = mlp(layers=2)
    src = save_external(model, tmp_path / "model.onnx")
    compress_file(src, tmp_path / "out.onnx", external_data=False)
    assert not (tmp_path / "out.onnx.data").exists()
    assert external_tensors(tmp_path / "out.onnx") == []
    assert_same_outputs(model, onnx.load_model(tmp_path / "out.onnx"), random_feeds(model))


def test_prune_streams_external_data(tmp_path: Path) -> None:
    src = save_external(mlp(layers=3, sparsity=0.0), tmp_path / "model.onnx")
    result = prune_file(src, tmp_path / "pruned.onnx", 0.75)
    assert len(result.weights) == 3
    pruned = onnx.load_model(tmp_path / "pruned.onnx")
    for i in range(3):
        assert np.count_nonzero(numpy_helper.to_array(pruned.graph.initializer[i]) == 0) == round(
            0.75 * WIDTH**2
        )


def _compress_peak(tmp_path: Path, layers: int, width: int) -> int:
    src = save_external(mlp(layers=layers, width=width, sparsity=0.5), tmp_path / f"model{layers}.onnx")
    tracemalloc.start()
    try:
        compress_file(src, tmp_path / f"out{layers}.onnx")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_layers(tmp_path: Path) -> None:
    """A streaming compress holds one layer at a time: its peak traced memory (the encoder's
    working set for one layer) is the same for 2 and for 16 layers of the same size."""
    width = 384
    layer_bytes = width * width * 4
    small, large = _compress_peak(tmp_path, 2, width), _compress_peak(tmp_path, 16, width)
    assert large < small + 2 * layer_bytes, (
        f"peak {small / layer_bytes:.1f} → {large / layer_bytes:.1f} layers"
    )


# --- atomic writes -----------------------------------------------------------------------------


def test_failure_leaves_the_output_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = save_external(mlp(layers=3), tmp_path / "model.onnx")
    dst = tmp_path / "out.onnx"
    dst.write_bytes(b"previous model")
    (tmp_path / "out.onnx.data").write_bytes(b"previous data")
    calls = []

    def failing_encode(weight: np.ndarray, codec: str = "lsc", **params: object) -> bytes:
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("boom")
        from lsc_ort.api import encode

        return encode(weight, codec)

    monkeypatch.setattr("lsc_ort.rewriter.choose.encode", failing_encode)
    with pytest.raises(ValueError, match=r"node 'layer1' \(MatMul\): boom"):
        compress_file(src, dst)
    assert dst.read_bytes() == b"previous model"
    assert (tmp_path / "out.onnx.data").read_bytes() == b"previous data"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.onnx",
        "model.onnx.weights",
        "out.onnx",
        "out.onnx.data",
    ]


@pytest.mark.parametrize("output", ["model.onnx", "model.onnx.weights"])
def test_output_may_not_overwrite_the_input(tmp_path: Path, output: str) -> None:
    src = save_external(mlp(layers=1), tmp_path / "model.onnx")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    # "model.onnx.weights" as output would write its data file over nothing the input reads, but
    # it would itself overwrite the input's external data file
    with pytest.raises(ValueError, match="would overwrite"):
        compress_file(src, tmp_path / output)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_output_data_file_may_not_overwrite_the_input_data(tmp_path: Path) -> None:
    model = mlp(layers=1)
    onnx.save_model(
        model, tmp_path / "model.onnx", save_as_external_data=True, location="out.onnx.data", size_threshold=0
    )  # converts model, which is not used again
    with pytest.raises(ValueError, match=r"external data file 'out\.onnx\.data'"):
        compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx")


def test_save_model_refuses_a_missing_directory(tmp_path: Path) -> None:
    model = mlp(layers=1)
    onnx.save_model(model, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="does not exist"):
        compress_file(tmp_path / "m.onnx", tmp_path / "nowhere" / "out.onnx")


def test_save_model_inline_and_external(tmp_path: Path) -> None:
    model = mlp(layers=2)
    save_model(onnx.ModelProto.FromString(model.SerializeToString()), tmp_path / "a.onnx")
    assert onnx.load_model(tmp_path / "a.onnx") == model
    save_model(onnx.ModelProto.FromString(model.SerializeToString()), tmp_path / "b.onnx", external_data=True)
    assert len(external_tensors(tmp_path / "b.onnx")) == 2
    assert constant_values(onnx.load_model(tmp_path / "b.onnx")).keys() == constant_values(model).keys()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_decompress_streams_when_the_dense_model_would_pass_2gb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = mlp(layers=3)
    onnx.save_model(model, tmp_path / "model.onnx")
    compress_file(tmp_path / "model.onnx", tmp_path / "lsc.onnx")
    assert not (tmp_path / "lsc.onnx.data").exists()
    from lsc_ort.rewriter.decompress import decoded_bytes

    assert decoded_bytes(onnx.load(tmp_path / "lsc.onnx")) == 3 * WIDTH * WIDTH * 4
    monkeypatch.setattr("lsc_ort.rewriter.model_io.INLINE_LIMIT", 2 * WIDTH * WIDTH * 4)  # a small "2 GB"
    decompress_file(tmp_path / "lsc.onnx", tmp_path / "dense.onnx")
    assert len(external_tensors(tmp_path / "dense.onnx")) == 3
    assert_same_outputs(model, onnx.load(tmp_path / "dense.onnx"), random_feeds(model))


def test_written_files_get_ordinary_permissions(tmp_path: Path) -> None:
    src = save_external(mlp(layers=1), tmp_path / "model.onnx")
    umask = os.umask(0o022)
    try:
        compress_file(src, tmp_path / "out.onnx")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.onnx").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "out.onnx.data").stat().st_mode & 0o777 == 0o644
