"""f2f: the XOR-gate coding's own behaviour (the conformance suite covers it as every codec)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import lsc_ort
from lsc_ort import native
from lsc_ort.codecs import get_codec
from lsc_ort.codecs.f2f import F2fCodec, auto_parameters, matrix_rows, stream_positions
from lsc_ort.format import bit_patterns, pack_blob, parse_blob
from tests.conftest import sparse_array
from tests.f2f_reference import fewest_misses

pytestmark = pytest.mark.skipif(not native.library_available(), reason="the f2f encoder needs the native library")

PARAMS = F2fCodec.param_names
SECTIONS = F2fCodec.section_names


def patches(blob: bytes) -> int:
    return int(lsc_ort.inspect(blob)["patches"])


def repack(blob: bytes, *, params: dict[str, int] | None = None, sections: dict[str, bytes] | None = None) -> bytes:
    """``blob`` with some params or sections replaced (and a valid CRC)."""
    view = parse_blob(blob)
    values = dict(zip(PARAMS, view.header.params, strict=True))
    values.update(params or {})
    data = {name: bytes(s) for name, s in zip(SECTIONS, view.sections, strict=True)}
    data.update(sections or {})
    header = view.header
    return pack_blob(codec_id=header.codec_id, dtype=header.dtype, shape=header.shape,
                     params=[values[p] for p in PARAMS], sections=[data[s] for s in SECTIONS], nnz=header.nnz,
                     scale=header.scale)


def assert_both_reject(blob: bytes, message: str) -> None:
    """The Python and the native reader both reject ``blob``, naming the problem."""
    with pytest.raises(ValueError, match=message):
        lsc_ort.decode(blob)
    with pytest.raises(ValueError, match=message):
        native.native_decode(blob)


@pytest.mark.parametrize("params", [
    dict(n_in=2, n_out=9, n_s=3), dict(n_in=4, n_out=40, n_s=1), dict(n_in=1, n_out=5, n_s=8),
    dict(n_in=3, n_out=20, n_s=5), dict(n_in=5, n_out=40, n_s=2), dict(n_in=6, n_out=50, n_s=2),
    dict(n_in=7, n_out=64, n_s=1), dict(n_in=12, n_out=100, n_s=1), dict(n_in=4, n_out=1, n_s=2),
    dict(n_in=4, n_out=4096, n_s=4, segment_blocks=1), dict(n_in=4, n_out=30, n_s=4, segment_blocks=7, seed=-5),
    dict(block=(3, 5)), dict(block=(1, 1), code_bits=0), dict(block=(1, 10), chunk_block_rows=3),
    dict(order=0), dict(order=0, block=(4, 2)), dict(order=1, block=(2, 9), n_s=2),
], ids=str)
def test_explicit_parameters_roundtrip(params: dict) -> None:
    weight = sparse_array((45, 70), 0.85, seed=3)
    blob = lsc_ort.encode(weight, "f2f", **params)
    assert lsc_ort.decode(blob).tobytes() == weight.tobytes()
    assert native.native_decode(blob) == weight.tobytes()
    stored = lsc_ort.inspect(blob)["params"]
    assert {k: v for k, v in stored.items() if k in params} == {
        k: v for k, v in params.items() if k not in ("block",)}


def test_native_search_is_optimal() -> None:
    """The native Viterbi search leaves exactly as few wrong care bits as an exhaustive numpy
    search over every register state (so the patches are the minimum the network allows)."""
    weight = sparse_array((30, 41), 0.8, seed=5)
    for n_in, n_out, n_s, segment, order in [(2, 9, 3, 16, 1), (3, 16, 2, 40, 0), (4, 21, 1, 100, 1), (1, 4, 5, 9, 1)]:
        blob = lsc_ort.encode(weight, "f2f", n_in=n_in, n_out=n_out, n_s=n_s, segment_blocks=segment, order=order)
        info = lsc_ort.inspect(blob)
        bits = bit_patterns(weight)
        flat = np.flatnonzero(bits)
        stream = stream_positions(flat, *weight.shape, info["params"]["order"])
        order = np.argsort(stream)
        planes = [b for b in range(32) if (info["params"]["planes"] >> b) & 1]
        best = fewest_misses(stream[order].astype(np.uint64), bits[flat[order]], numel=weight.size, planes=planes,
                             n_in=n_in, n_out=n_out, n_s=n_s, seed=info["params"]["seed"], segment_blocks=segment)
        assert info["patches"] == best, (n_in, n_out, n_s)


def test_sequential_scheme_leaves_fewer_unmatched_bits_at_the_same_rate() -> None:
    weight = sparse_array((256, 256), 0.9, seed=7)
    misses = {n_s: patches(lsc_ort.encode(weight, "f2f", n_in=4, n_out=46, n_s=n_s)) for n_s in (1, 2, 3, 4)}
    assert misses[4] < misses[3] < misses[2] < misses[1]
    assert misses[4] < 0.5 * misses[1]
    sizes = {n_s: len(lsc_ort.encode(weight, "f2f", n_in=4, n_out=46, n_s=n_s)) for n_s in (1, 4)}
    assert sizes[4] < sizes[1]


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_every_search_variant_gives_the_same_blob(isa: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """32-bit and 16-bit searches, SIMD or not, choose the same inputs (``n_out=250`` gives blocks
    of more than 16 care bits)."""
    weight = sparse_array((40, 64), 0.9, seed=2)
    cases = [dict(n_in=4, n_out=45, n_s=3), dict(n_in=4, n_out=45, n_s=4), dict(n_in=4, n_out=250, n_s=3),
             dict(n_in=3, n_out=30, n_s=3), dict(n_in=5, n_out=50, n_s=2), dict(n_in=6, n_out=60, n_s=2),
             dict(n_in=2, n_out=20, n_s=4)]
    expected = [lsc_ort.encode(weight, "f2f", **c) for c in cases]
    monkeypatch.setenv("LSC_ORT_ISA", isa)
    assert [lsc_ort.encode(weight, "f2f", **c) for c in cases] == expected


def test_automatic_parameters_follow_the_density(monkeypatch: pytest.MonkeyPatch) -> None:
    for sparsity, expected_out in [(0.5, 9), (0.9, 47), (0.98, 233)]:
        weight = sparse_array((128, 200), sparsity, seed=1)
        params = lsc_ort.inspect(lsc_ort.encode(weight, "f2f"))["params"]
        assert (params["n_in"], params["n_s"]) == (4, 4)
        assert abs(params["n_out"] - expected_out) <= 1
    assert auto_parameters(0.0)[1] == 4096 and auto_parameters(1.0)[1] >= 4
    # Larger tensors (more care bits) get the faster 3-block register, at its own rate.
    monkeypatch.setattr("lsc_ort.codecs.f2f.LARGE_CARE_BITS", 1000)
    params = lsc_ort.inspect(lsc_ort.encode(sparse_array((128, 200), 0.9, seed=1), "f2f"))["params"]
    assert (params["n_s"], params["n_out"]) == (3, auto_parameters(0.1, 4, 3)[1])
    assert lsc_ort.inspect(lsc_ort.encode(sparse_array((128, 200), 0.9, seed=1), "f2f", n_s=4))["params"]["n_s"] == 4


def test_report_efficiency_and_patch_bytes() -> None:
    weight = sparse_array((256, 384), 0.9, seed=4)
    info = lsc_ort.inspect(lsc_ort.encode(weight, "f2f"))
    assert 0.9 < info["encoding_efficiency"] <= 1.0
    assert info["patch_bytes"] == info["sections"]["patch_chunks"] + info["sections"]["patches"]
    assert info["care_bits"] == info["nnz"] * bin(info["params"]["planes"]).count("1")
    stored = 8 * (info["sections"]["inputs"] + info["patch_bytes"])
    assert info["encoding_efficiency"] == pytest.approx(info["care_bits"] / stored)
    empty = lsc_ort.inspect(lsc_ort.encode(np.zeros((4, 4), np.float32), "f2f"))
    assert empty["encoding_efficiency"] == 1.0 and empty["patches"] == 0


def test_constant_planes_are_not_coded() -> None:
    """Weights in [0.5, 1): the sign and the exponent bits are shared, only the mantissa coded."""
    rng = np.random.default_rng(3)
    weight = (0.5 + 0.5 * rng.random((256, 256))).astype(np.float32)
    weight[rng.random((256, 256)) < 0.9] = 0
    blob = lsc_ort.encode(weight, "f2f")
    params = lsc_ort.inspect(blob)["params"]
    assert params["planes"] == (1 << 23) - 1 or params["planes"] & ~((1 << 23) - 1) == 0
    assert params["fill"] == 0x3F000000
    assert lsc_ort.decode(blob).tobytes() == weight.tobytes()
    assert len(blob) < lsc_ort.entropy_bound(weight)  # 9 shared bits per value are not stored


def test_float16_and_int8_roundtrip_with_auto_parameters() -> None:
    for dtype, scale in [(np.float16, {}), (np.int8, {"scale": 0.25})]:
        weight = sparse_array((96, 80), 0.9, dtype, seed=6)
        blob = lsc_ort.encode(weight, "f2f", **scale)
        assert lsc_ort.decode(blob).tobytes() == weight.tobytes()
        assert native.native_decode(blob) == weight.tobytes()


@pytest.mark.parametrize(("options", "message"), [
    (dict(n_in=0), "n_in must be an int in"), (dict(n_out=5000), "n_out must be an int in"),
    (dict(n_s=9), "n_s must be an int in"), (dict(n_in=16, n_s=5), "n_in \\* n_s must be at most 64"),
    (dict(n_in=13), "n_in=13 is out of range"), (dict(n_in=6, n_s=4), "beyond the search limits"),
    (dict(n_s=True), "n_s must be an int"), (dict(block=(4, 4), code_bits=0), "needs block \\(1, 1\\)"),
    (dict(segment_blocks=0), "segment_blocks must be"),
])
def test_bad_options_are_rejected(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lsc_ort.encode(sparse_array((20, 30), 0.8), "f2f", **options)


def test_without_the_native_library(monkeypatch: pytest.MonkeyPatch) -> None:
    weight = sparse_array((30, 40), 0.9)
    blob = lsc_ort.encode(weight, "f2f")
    monkeypatch.setattr(F2fCodec, "available", lambda self: False)
    with pytest.raises(RuntimeError, match="f2f encodes in the native library, which is not built"):
        lsc_ort.encode(weight, "f2f")
    assert lsc_ort.inspect(lsc_ort.encode(weight, "auto"))["codec"] != "f2f"
    assert lsc_ort.decode(blob).tobytes() == weight.tobytes()  # decoding is numpy


def test_auto_codec_takes_f2f_where_it_is_smallest() -> None:
    """Magnitude-pruned weights share exponent bits, so f2f beats raw values."""
    rng = np.random.default_rng(8)
    weight = rng.standard_normal((200, 300)).astype(np.float32) * 0.05
    weight[np.abs(weight) < np.quantile(np.abs(weight), 0.9)] = 0
    blob = lsc_ort.encode(weight, "auto")
    assert lsc_ort.inspect(blob)["codec"] == "f2f"
    assert len(blob) < len(lsc_ort.encode(weight, "lsc"))
    assert get_codec("f2f").estimate_bytes(lsc_ort.codecs.WeightTensor.from_array(weight)) <= len(blob)


# ---- hostile blobs: both readers reject them, naming the problem ---------------------------

@pytest.fixture(scope="module")
def blob() -> bytes:
    weight = sparse_array((48, 64), 0.85, seed=9)
    encoded = lsc_ort.encode(weight, "f2f", n_in=4, n_out=20, n_s=2)
    assert patches(encoded) > 10
    return encoded


@pytest.mark.parametrize(("params", "message"), [
    (dict(n_out=1 << 40), r"param n_out=1099511627776 is out of range \[1, 4096\]"),
    (dict(n_out=0), "param n_out=0 is out of range"),
    (dict(n_in=33), r"param n_in=33 is out of range \[1, 32\]"),
    (dict(n_in=-1), "param n_in=-1 is out of range"),
    (dict(n_s=1 << 62), r"param n_s=4611686018427387904 is out of range \[1, 8\]"),
    (dict(n_in=16, n_s=5), r"param n_s=5 is out of range \[1, 4\]"),
    (dict(order=2), r"param order=2 is out of range \[0, 1\]"),
    (dict(segment_blocks=0), "param segment_blocks=0 is out of range"),
    (dict(segment_blocks=1 << 50), "param segment_blocks=.* is out of range"),
    (dict(planes=1 << 32), "param planes=4294967296 is out of range"),
    (dict(fill=1), "fill 1 sets bits of coded planes"),
    (dict(patch_code_bits=17), "param patch_code_bits=17 is out of range"),
    (dict(patch_split=0), "param patch_split=0 is out of range"),
    (dict(n_out=19), r"inputs has \d+ bytes, (expected|too few)"),
    (dict(code_bits=0, split=0), "codes present without a coding layer"),
    # (the chunk table is checked first: its size bounds the work of the block mask)
    (dict(block_rows=2, block_cols=2, code_bits=0, split=0), "(block_mask|chunks section) has .* (bytes|elements)"),
])
def test_bad_params_are_clear_errors(blob: bytes, params: dict, message: str) -> None:
    assert_both_reject(repack(blob, params=params), message)


def test_corrupted_sections_are_clear_errors(blob: bytes) -> None:
    view = parse_blob(blob)
    sections = dict(zip(SECTIONS, (bytes(s) for s in view.sections), strict=True))
    params = dict(zip(PARAMS, view.header.params, strict=True))
    inputs = sections["inputs"]
    assert_both_reject(repack(blob, sections={"inputs": inputs[:-1]}), "inputs has .* bytes")
    assert_both_reject(repack(blob, sections={"inputs": inputs + b"\0"}), "inputs has .* bytes")
    table = np.frombuffer(sections["patch_chunks"], "<u8").reshape(-1, 2).copy()
    huge = table.copy()
    huge[-1] = (1 << 62, 1 << 62)
    assert_both_reject(repack(blob, sections={"patch_chunks": huge.tobytes()}), "patch chunk table is not monotone")
    more = table.copy()
    more[-1, 1] += 5
    assert_both_reject(repack(blob, sections={"patch_chunks": more.tobytes()}), "gap codes|fewer patch codes")
    codes = sections["patches"]
    assert_both_reject(repack(blob, sections={"patches": codes + b"\0"}), "patches has .* bytes")
    assert_both_reject(repack(blob, sections={"patch_chunks": table[:-1].tobytes()}), "patch_chunks section has")
    # A patch that flips a bit of a plane the blob does not code.
    planes = params["planes"]
    assert_both_reject(repack(blob, params={"planes": planes & ~1, "fill": 0}),
                       "inputs has|which is not a coded plane")
    # Every patch code a gap of 0 past the slots: positions run out of range.
    width = params["patch_code_bits"]
    ones = np.full(len(codes), 0xFF, np.uint8).tobytes()
    if width == 8:
        assert_both_reject(repack(blob, sections={"patches": ones}), "out of range|gap codes|patch codes")


def test_random_patch_corruption_agrees(blob: bytes) -> None:
    """Random changes of the patch codes: both readers reject, or both decode identically."""
    rng = np.random.default_rng(1)
    view = parse_blob(blob)
    codes = bytearray(bytes(view.sections[SECTIONS.index("patches")]))
    for _ in range(100):
        changed = bytearray(codes)
        for i in rng.integers(0, len(changed), size=rng.integers(1, 4)):
            changed[i] = rng.integers(0, 256)
        candidate = repack(blob, sections={"patches": bytes(changed)})
        try:
            expected: bytes | str = lsc_ort.decode(candidate).tobytes()
        except ValueError as error:
            expected = re.sub(r"\s+", " ", str(error))
        try:
            actual: bytes | str = native.native_decode(candidate)
        except ValueError as error:
            actual = re.sub(r"\s+", " ", str(error))
        assert isinstance(expected, str) == isinstance(actual, str), (expected, actual)
        if isinstance(expected, bytes):
            assert expected == actual


def test_matrix_rows_are_seeded_and_never_zero() -> None:
    rows = matrix_rows(7, 4096, 4)
    assert rows.min() > 0 and rows.max() < 16
    assert np.array_equal(rows, matrix_rows(7, 4096, 4))
    assert not np.array_equal(rows, matrix_rows(8, 4096, 4))
    assert matrix_rows(0, 3, 64).dtype == np.uint64


def test_kept_blocks_stored_whole_need_1x1_blocks(blob: bytes) -> None:
    """Without a coding layer, slots of larger blocks would include edge padding (no stream
    position): only 1x1 blocks (the bitmap regime) are allowed."""
    weight = sparse_array((48, 64), 0.85, seed=9)
    layer = parse_blob(lsc_ort.encode(weight, "lsc", block=(2, 2), code_bits=0))
    view = parse_blob(blob)
    params = [*layer.header.params, *view.header.params[5:]]
    sections = [bytes(s) for s in layer.sections[:3]] + [bytes(s) for s in view.sections[3:]]
    crafted = pack_blob(codec_id=6, dtype=view.header.dtype, shape=view.header.shape, params=params,
                        sections=sections, nnz=view.header.nnz)
    assert_both_reject(crafted, r"without a coding layer \(code_bits 0\) the block must be 1x1, got 2x2")


def test_compress_and_inspect_show_e_per_layer(tmp_path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    from lsc_ort.cli import main
    from tests.rewrite_fixtures import parse, sparse

    model = parse('''<ir_version: 8, opset_import: ["" : 17]> g (float[N,64] a) => (float[N,32] y) {
        h = MatMul(a, W1)
        y = MatMul(h, W2)
    }''', W1=sparse((64, 48), 0.9, seed=1), W2=sparse((48, 32), 0.9, seed=2))
    source, target = tmp_path / "m.onnx", tmp_path / "f2f.onnx"
    onnx.save_model(model, source)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["compress", str(source), "-o", str(target), "--codec", "f2f"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"f2f E=0\.\d\d", out)) == 2
    assert max(len(line) for line in out.splitlines()) <= 80
    assert main(["inspect", str(target), "-v"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"f2f E=0\.\d\d", out)) == 2
    assert max(len(line) for line in out.splitlines()) <= 80
    assert main(["verify", str(source), str(target)]) == 0
