"""Absurd LSCConv attributes and shapes: a clear error naming the node and the problem where
onnxruntime's Conv fails too, and the same output as onnxruntime's Conv, computed within a bound
proportional to the input and output, where it succeeds.

Huge dilations, strides or pads used to wrap the output-size arithmetic to a plausible size, and
the direct path then read far outside the input (a segfault); a kernel of height 0 was accepted.
The geometry is now computed with checked arithmetic (``kernels/conv_geometry.cc``), which the
fuzzer ``fuzz_conv`` drives too, and so is the size of the padded input planes LSCConv computes
on: past 2^29 floats per channel, the run fails naming the pads, strides and dilations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import helper, numpy_helper

import lsc_ort
from lsc_ort import native
from tests.conftest import sparse_array
from tests.hostile import ERRORS
from tests.op_models import assert_close, conv_model, dense_session, session

pytestmark = pytest.mark.skipif(not native.library_available(), reason="native library not built")

X2 = (1, 2, 20, 41)
W2 = (4, 2, 3, 3)

# (X shape, weight shape, attributes, message) of convolutions that must fail at run time.
FAILING: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any], str]] = [
    # (9 - 1) * 3 * 2^61 wraps to 0: the extent looked like 1 and the taps pointed 2^63 bytes away.
    (X2, (4, 2, 9, 9), {"dilations": [3 * 2**61, 1]}, r"kernel's height extent \(9 - 1\) \* dilation"),
    (X2, W2, {"dilations": [1, 2**63 - 1]}, r"kernel's width extent \(3 - 1\) \* dilation 9223372036854775807"),
    (X2, W2, {"dilations": [2**62, 1]}, "kernel's height extent"),
    (X2, W2, {"pads": [2**62, 0, 2**62, 0]}, "padded input height 20 \\+ 4611686018427387904"),
    (X2, W2, {"pads": [0, 2**62, 0, 1]}, "padded input width 41 \\+ 4611686018427387904 \\+ 1 is too large"),
    (X2, W2, {"pads": [0, 0, 0, 2**63 - 1]}, "padded input width"),
    (X2, W2, {"auto_pad": "SAME_UPPER", "dilations": [2**62, 1]}, "kernel's height extent"),
    ((1, 2, 3, 41), (4, 2, 5, 3), {}, "kernel's height extent 5 exceeds the padded input height 3"),
    ((1, 2, 3, 41), (4, 2, 5, 3), {"auto_pad": "VALID"}, "exceeds the padded input height 3"),
    ((1, 2, 20, 41), W2, {"dilations": [10, 1]}, "kernel's height extent 21 exceeds the padded input height 20"),
    ((1, 2, 0, 41), W2, {"auto_pad": "SAME_LOWER"}, "the input height is 0"),
    ((1, 2, 30), (4, 2, 3), {"dilations": [2**62]}, "kernel's width extent"),
    ((1, 2, 30), (4, 2, 3), {"pads": [2**62, 2**62]}, "padded input width"),
]


@pytest.mark.parametrize("x_shape,w_shape,attributes,message", FAILING,
                         ids=[f"{a}-{w}" for _, w, a, _ in FAILING])
def test_absurd_geometry_fails_the_run_naming_the_problem(x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                                                          attributes: dict[str, Any], message: str) -> None:
    blob = lsc_ort.encode(sparse_array(w_shape, 0.3), "lsc")
    sess = session(conv_model(blob, **attributes))
    with pytest.raises(ERRORS, match=rf"LSCConv\] node 'lsc_conv': .*{message}"):
        sess.run(None, {"X": np.ones(x_shape, np.float32)})
    dense = dense_conv(sparse_array(w_shape, 0.3), attributes)
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's Conv rejects these too
        dense.run(None, {"X": np.ones(x_shape, np.float32)})


@pytest.mark.parametrize("w_shape", [(4, 2, 0, 3), (4, 2, 3, 0), (4, 2, 0)], ids=str)
def test_kernel_dims_of_zero_are_rejected(w_shape: tuple[int, ...]) -> None:
    blob = lsc_ort.encode(np.zeros(w_shape, np.float32), "lsc")
    with pytest.raises(ERRORS, match=r"LSCConv\] node 'lsc_conv': the weight .* has a kernel dim of 0"):
        session(conv_model(blob))


@pytest.mark.parametrize("attributes,message", [
    ({"strides": [1, 1, 1]}, "strides and dilations need 2 values"),
    ({"dilations": [0, 1]}, "strides and dilations must be >= 1"),
    ({"strides": [1, -(2**63)]}, "strides and dilations must be >= 1"),
    ({"pads": [1, 1, 1]}, "pads needs 4 values"),
    ({"pads": [0, -1, 0, 0]}, "pads must be >= 0"),
    ({"group": 0}, "group must be >= 1"),
    ({"group": -(2**63)}, "group must be >= 1"),
    ({"group": 2**62}, "not divisible by group"),
    ({"kernel_shape": [3]}, r"kernel_shape \[3\] does not match"),
    ({"auto_pad": "VALID", "pads": [1, 1, 1, 1]}, "auto_pad 'VALID' and pads cannot both be set"),
])
def test_bad_attributes_fail_session_creation(attributes: dict[str, Any], message: str) -> None:
    blob = lsc_ort.encode(sparse_array(W2, 0.3), "lsc")
    with pytest.raises(ERRORS, match=rf"LSCConv\] node 'lsc_conv': .*{message}"):
        session(conv_model(blob, **attributes))


def dense_conv(w: np.ndarray, attributes: dict[str, Any]) -> Any:
    node = helper.make_node("Conv", ["X", "W"], ["Y"], **attributes)
    return dense_session(node, [numpy_helper.from_array(w, "W")], "X")


# (X shape, weight shape, attributes) of extreme convolutions onnxruntime's Conv computes.
EXTREME: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    (X2, W2, {"strides": [2**62, 1]}),  # one output row: the stride does not matter
    (X2, W2, {"strides": [2**62, 2**62]}),
    ((1, 2, 3, 20), W2, {"dilations": [1000, 1], "pads": [1000, 1, 1000, 1]}),  # tall, mostly padding
    ((1, 2, 20, 41), W2, {"dilations": [9, 19]}),
    ((1, 2, 0, 41), (4, 2, 1, 3), {"pads": [1, 0, 1, 0]}),  # empty input rows, output from padding
    ((1, 2, 40), (4, 2, 3), {"dilations": [19]}),
    # (onnxruntime pads by a negative amount when a stride exceeds the input, where ONNX's reference
    # clamps the padding at 0, as LSCConv does: the cases here need no such padding.)
    ((1, 2, 1, 60), W2, {"auto_pad": "SAME_UPPER", "strides": [2**62, 3]}),
    ((1, 2, 2, 61), W2, {"auto_pad": "SAME_LOWER", "strides": [2**40, 2]}),
]

# Geometries whose padded input planes (LSCConv computes on them, zero-padded and split into
# stride phases) would exceed 2^29 floats per channel: a clear error, where onnxruntime computes.
TOO_LARGE_PLANES: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ((1, 2, 5, 5), W2, {"pads": [2**40, 0, 2**40, 0], "strides": [2**39, 1]}),  # 5 rows, mostly padding
    ((1, 2, 5, 30), W2, {"pads": [2**40, 2**40, 2**40, 2**40], "strides": [2**39, 2**35]}),
    ((1, 2, 3, 20), W2, {"dilations": [10**9, 1], "pads": [10**9, 1, 10**9, 1]}),
    ((2, 2, 50), (4, 2, 3), {"strides": [2**62], "pads": [2**60, 2**60]}),
    # A left pad of 2^33 at stride 2^24: 2^24 phase planes (the gathered tiles' padded copy would
    # be 2^33 wide too).
    ((1, 2, 2, 2000), (4, 2, 1, 3), {"pads": [0, 2**33, 0, 0], "strides": [1, 2**24]}),
]


@pytest.mark.parametrize("x_shape,w_shape,attributes", TOO_LARGE_PLANES, ids=[str(a) for _, _, a in TOO_LARGE_PLANES])
def test_geometry_beyond_the_planes_limit_fails_clearly(x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                                                        attributes: dict[str, Any]) -> None:
    w = sparse_array(w_shape, 0.3, seed=2)
    sess = session(conv_model(lsc_ort.encode(w, "lsc"), **attributes))
    with pytest.raises(ERRORS, match=r"LSCConv\] node 'lsc_conv': the padded input planes of X .* would take more "
                                     r"than 2\^29 floats per channel"):
        sess.run(None, {"X": np.ones(x_shape, np.float32)})


@pytest.mark.parametrize("x_shape,w_shape,attributes", EXTREME, ids=[str(a) for _, _, a in EXTREME])
def test_extreme_but_valid_geometry_matches_onnxruntime(x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                                                        attributes: dict[str, Any]) -> None:
    rng = np.random.default_rng(len(str(attributes)))
    w = sparse_array(w_shape, 0.3, seed=2)
    x = rng.standard_normal(x_shape).astype(np.float32)
    expected = dense_conv(w, attributes).run(None, {"X": x})[0]
    y = session(conv_model(lsc_ort.encode(w, "lsc"), **attributes)).run(None, {"X": x})[0]
    assert y.shape == expected.shape
    assert_close(y, expected.astype(np.float64))
