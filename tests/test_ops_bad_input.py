"""Bad blobs, shapes and attributes fail session creation or the run with a clear message
naming the op, the node and the problem: never a crash or a wrong answer."""

from __future__ import annotations

import struct

import numpy as np
import onnxruntime as ort
import pytest

import lsc_ort
from lsc_ort import native
from tests.conftest import sparse_array
from tests.hostile import corrupt_randomly, refresh_crc
from tests.op_models import conv_model, matmul_model, session

pytestmark = pytest.mark.skipif(not native.library_available(), reason="native library not built")

ERRORS = (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidArgument,
          ort.capi.onnxruntime_pybind11_state.RuntimeException, ort.capi.onnxruntime_pybind11_state.InvalidGraph)


def good_blob(codec: str = "lsc") -> bytes:
    return lsc_ort.encode(sparse_array((40, 30), 0.8), codec)


@pytest.mark.parametrize(
    "name,corrupt,message",
    [
        ("truncated", lambda b: b[:-5], "truncated"),
        ("trailing bytes", lambda b: b + b"\0\0", "trailing"),
        ("bit flip", lambda b: b[:300] + bytes([b[300] ^ 4]) + b[301:], "checksum"),
        ("magic", lambda b: b"JUNK" + b[4:], "magic"),
        ("version", lambda b: refresh_crc(bytearray(b[:4] + b"\x09\x00" + b[6:])), "version"),
        ("empty", lambda b: b"", "truncated"),
        ("codec id", lambda b: refresh_crc(bytearray(b[:6] + b"\x42" + b[7:])), "codec"),
    ],
)
def test_corrupted_blob_fails_session_creation(name: str, corrupt, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ERRORS, match=rf"LSCMatMul\] node 'lsc_mm'.*{message}"):
        session(matmul_model(corrupt(good_blob())))


def test_index_out_of_range_is_reported() -> None:
    blob = bytearray(lsc_ort.encode(sparse_array((6, 8), 0.5), "csr"))
    indices_offset = struct.unpack_from("<Q", blob, 40 + 16 + 16)[0]
    blob[indices_offset:indices_offset + 4] = struct.pack("<i", 812)
    with pytest.raises(ERRORS, match=r"index 812 .*out of range \[0, 8\)"):
        session(matmul_model(refresh_crc(blob)))


def test_lsc_position_out_of_range_is_reported() -> None:
    weight = np.zeros((8, 8), np.float32)
    weight[7, 7] = 1.0
    blob = bytearray(lsc_ort.encode(weight, "lsc", block=(8, 8), code_bits=8, split=255))
    codes_offset = struct.unpack_from("<Q", blob, 40 + 16 + 40 + 32)[0]
    assert blob[codes_offset] == 63
    blob[codes_offset] = 64  # one past the last element of the only block
    with pytest.raises(ERRORS, match=r"position 64 in chunk 0 is out of range \[0, 64\)"):
        session(matmul_model(refresh_crc(blob)))


def test_random_structural_corruptions_never_crash() -> None:
    """CRC-valid corrupted blobs: the session fails cleanly or computes what the Python decoder
    decodes from the same blob."""
    weight = sparse_array((24, 20), 0.85, seed=3)
    a = np.random.default_rng(0).standard_normal((3, 24)).astype(np.float32)
    rng = np.random.default_rng(5)
    for codec in lsc_ort.available_codecs():
        blob = lsc_ort.encode(weight, codec)
        for _ in range(40):
            candidate = corrupt_randomly(blob, rng, 2)
            try:
                decoded = lsc_ort.decode(candidate)
            except ValueError:
                with pytest.raises(ERRORS):
                    session(matmul_model(candidate)).run(None, {"A": a})
                continue
            # Huge values (f2f turns a corrupted input bit into many random bit patterns) would test
            # float32 rounding, not decoding.
            if decoded.ndim != 2 or decoded.shape[0] != 24 or not (np.abs(decoded) < 1e4).all():
                continue
            y = session(matmul_model(candidate)).run(None, {"A": a})[0]
            np.testing.assert_allclose(y, a.astype(np.float64) @ decoded, rtol=1e-4, atol=1e-4)


def test_activation_shape_mismatch_names_the_node() -> None:
    sess = session(matmul_model(good_blob()))
    with pytest.raises(ERRORS, match=r"LSCMatMul\] node 'lsc_mm': A has shape \[2, 39\] .* must be 40"):
        sess.run(None, {"A": np.zeros((2, 39), np.float32)})


def test_bias_shape_mismatch() -> None:
    with pytest.raises(ERRORS, match=r"bias has shape \[31\], expected \[30\]"):
        session(matmul_model(good_blob(), np.zeros(31, np.float32))).run(None, {"A": np.zeros((1, 40), np.float32)})


def test_matmul_needs_a_matrix() -> None:
    blob = lsc_ort.encode(sparse_array((4, 5, 6), 0.5), "lsc")
    with pytest.raises(ERRORS, match="rank 3; LSCMatMul needs a 2-D matrix"):
        session(matmul_model(blob))


def test_bad_transb_attribute() -> None:
    with pytest.raises(ERRORS, match="transB must be 0 or 1"):
        session(matmul_model(good_blob(), transB=3))


def test_runtime_blob_input_is_validated_on_every_run() -> None:
    sess = session(matmul_model(b"", blob_as_input=True))
    with pytest.raises(ERRORS, match="checksum"):
        blob = bytearray(good_blob())
        blob[-1] ^= 1
        sess.run(None, {"A": np.zeros((1, 40), np.float32), "W": np.frombuffer(bytes(blob), np.uint8)})


def test_conv_errors_name_the_problem() -> None:
    weight = sparse_array((8, 4, 3, 3), 0.5)
    blob = lsc_ort.encode(weight, "lsc")
    x = np.zeros((1, 4, 6, 6), np.float32)
    with pytest.raises(ERRORS, match=r"LSCConv\] node 'lsc_conv': X has 5 channels"):
        session(conv_model(blob)).run(None, {"X": np.zeros((1, 5, 6, 6), np.float32)})
    with pytest.raises(ERRORS, match="kernel_shape \\[5, 5\\] does not match"):
        session(conv_model(blob, kernel_shape=[5, 5]))
    with pytest.raises(ERRORS, match="not divisible by group 3"):
        session(conv_model(blob, group=3))
    with pytest.raises(ERRORS, match="1-D and 2-D convolutions"):
        session(conv_model(lsc_ort.encode(np.ones((2, 2), np.float32), "lsc")))
    with pytest.raises(ERRORS, match="unsupported auto_pad"):
        session(conv_model(blob, auto_pad="SAME"))
    with pytest.raises(ERRORS, match="X has shape \\[1, 4, 6\\]"):
        session(conv_model(blob)).run(None, {"X": np.zeros((1, 4, 6), np.float32)})
    with pytest.raises(ERRORS, match="B has shape"):
        session(conv_model(blob, np.zeros(7, np.float32))).run(None, {"X": x})
    with pytest.raises(ERRORS, match="strides and dilations must be >= 1"):
        session(conv_model(blob, strides=[0, 1]))


def test_wrong_weight_type_is_rejected() -> None:
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("LSCMatMul", ["A", "W"], ["Y"], domain=lsc_ort.DOMAIN)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.ones((4, 4), np.float32), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(lsc_ort.DOMAIN, 1)])
    with pytest.raises(ERRORS):
        session(model.SerializeToString())


@pytest.mark.parametrize(
    "attributes,message",
    [
        ({"heads": 4}, r"heads \(4\) needs a head layout \(BHSD or BHDS\)"),
        ({"output_layout": "BHSD"}, "heads must be >= 1 with a head layout, got 0"),
        ({"output_layout": "BHSD", "heads": -3}, "heads must be >= 1"),
        ({"output_layout": "SBHD", "heads": 2}, "unsupported output_layout 'SBHD'"),
        ({"input_layout": "BHDS", "heads": 2}, "unsupported input_layout 'BHDS'"),
        ({"output_layout": "BHSD", "heads": 7}, r"heads \(7\) to divide the weight's 30 columns"),
        ({"input_layout": "BHSD", "heads": 3}, r"heads \(3\) to divide the weight's 40 rows"),
        ({"output_layout": "BHDS", "heads": 1 << 62}, "to divide the weight's 30 columns"),
    ],
)
def test_bad_head_layout_attributes(attributes: dict, message: str) -> None:
    with pytest.raises(ERRORS, match=rf"LSCMatMul\] node 'lsc_mm'.*{message}"):
        session(matmul_model(good_blob(), **attributes))


@pytest.mark.parametrize(
    "attributes,shape,message",
    [
        ({"output_layout": "BHSD", "heads": 5}, (4, 40), r"output_layout needs A of rank 3 \[B, S, K\], got \[4, 40\]"),
        ({"output_layout": "BHSD", "heads": 5}, (1, 2, 3, 40), "output_layout needs A of rank 3"),
        ({"input_layout": "BHSD", "heads": 4}, (2, 3, 40), r"needs A of shape \[B, 4, S, 10\], got \[2, 3, 40\]"),
        ({"input_layout": "BHSD", "heads": 4}, (2, 5, 3, 8), r"needs A of shape \[B, 4, S, 10\], got \[2, 5, 3, 8\]"),
        ({"input_layout": "BHSD", "heads": 4}, (2, 4, 3, 11), r"got \[2, 4, 3, 11\]"),
    ],
)
def test_head_layout_shape_mismatch(attributes: dict, shape: tuple[int, ...], message: str) -> None:
    sess = session(matmul_model(good_blob(), **attributes))
    with pytest.raises(ERRORS, match=rf"LSCMatMul\] node 'lsc_mm'.*{message}"):
        sess.run(None, {"A": np.zeros(shape, np.float32)})


def test_head_layout_with_a_residual_is_rejected() -> None:
    sess = session(matmul_model(good_blob(), residual=True, heads=3, output_layout="BHSD"))
    with pytest.raises(ERRORS, match="a residual input Z cannot be combined with output_layout"):
        sess.run(None, {"A": np.zeros((1, 2, 40), np.float32), "Z": np.zeros((1, 2, 30), np.float32)})


def test_head_layout_of_an_empty_weight_does_not_loop_over_heads() -> None:
    """K = 0 admits any H dividing it: an input of 2^40 heads and no elements is not a loop."""
    blob = lsc_ort.encode(np.zeros((0, 6), np.float32), "csr")
    sess = session(matmul_model(blob, heads=1 << 40, input_layout="BHSD"))
    y = sess.run(None, {"A": np.zeros((1, 1 << 40, 3, 0), np.float32)})[0]
    assert y.shape == (1, 3, 6) and not y.any()


@pytest.mark.parametrize(
    "attributes,message",
    [
        ({"output_layout": "TILES", "heads": 2}, r"heads \(2\) needs a head layout"),
        ({"input_layout": "TILES", "output_layout": "BHSD"}, "heads must be >= 1 with a head layout"),
        ({"input_layout": "tiles"}, "unsupported input_layout 'tiles'"),
    ],
)
def test_bad_row_tile_attributes(attributes: dict, message: str) -> None:
    with pytest.raises(ERRORS, match=rf"LSCMatMul\] node 'lsc_mm'.*{message}"):
        session(matmul_model(good_blob(), **attributes))


def test_row_tiles_with_a_residual_are_rejected() -> None:
    sess = session(matmul_model(good_blob(), residual=True, output_layout="TILES"))
    with pytest.raises(ERRORS, match="a residual input Z cannot be combined with output_layout"):
        sess.run(None, {"A": np.zeros((3, 40), np.float32), "Z": np.zeros((3, 30), np.float32)})
