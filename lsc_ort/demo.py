"""``lsc-ort demo``: build a LeNet-5-like model, prune it to 90 %, compress it, verify it.

Everything is made locally with onnx.helper and a seeded generator; no download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DEMO_SPARSITY = 0.9
DEMO_OPSET = 17


def build_lenet(seed: int = 0) -> onnx.ModelProto:
    """A LeNet-5-like classifier of 28×28 images exercising Conv, Gemm (both ``transB``) and MatMul.

    ``image [N, 1, 28, 28]`` → Conv 6@5×5 (pad 2) → Relu → MaxPool → Conv 16@5×5 → Relu →
    MaxPool → Flatten → Gemm 400→120 (``transB=1``) → Relu → Gemm 120→84 → Relu →
    MatMul 84→10 → Add → ``logits [N, 10]``. Weights are He-initialized from ``seed``.
    """
    rng = np.random.default_rng(seed)

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def bias(n: int) -> np.ndarray:
        return (0.01 * rng.standard_normal(n)).astype(np.float32)

    weights = {
        "conv1.weight": he((6, 1, 5, 5), 25),
        "conv1.bias": bias(6),
        "conv2.weight": he((16, 6, 5, 5), 150),
        "conv2.bias": bias(16),
        "fc1.weight": he((120, 400), 400),
        "fc1.bias": bias(120),
        "fc2.weight": he((120, 84), 120),
        "fc2.bias": bias(84),
        "fc3.weight": he((84, 10), 84),
        "fc3.bias": bias(10),
    }
    nodes = [
        helper.make_node(
            "Conv",
            ["image", "conv1.weight", "conv1.bias"],
            ["c1"],
            name="conv1",
            kernel_shape=[5, 5],
            pads=[2, 2, 2, 2],
        ),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node(
            "Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", kernel_shape=[5, 5]
        ),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["f1"], name="fc1", transB=1),
        helper.make_node("Relu", ["f1"], ["r3"], name="relu3"),
        helper.make_node("Gemm", ["r3", "fc2.weight", "fc2.bias"], ["f2"], name="fc2"),
        helper.make_node("Relu", ["f2"], ["r4"], name="relu4"),
        helper.make_node("MatMul", ["r4", "fc3.weight"], ["f3"], name="fc3"),
        helper.make_node("Add", ["f3", "fc3.bias"], ["logits"], name="fc3.add"),
    ]
    graph = helper.make_graph(
        nodes,
        "lenet5",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", DEMO_OPSET)], producer_name="lsc-ort demo"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@dataclass(frozen=True)
class DemoPaths:
    """The files the demo writes."""

    dense: Path
    pruned: Path
    compressed: Path
    report: Path


def demo_paths(workdir: str | os.PathLike) -> DemoPaths:
    """Where the demo writes its files in ``workdir``."""
    root = Path(workdir)
    return DemoPaths(
        root / "lenet5.onnx", root / "lenet5-pruned.onnx", root / "lenet5-lsc.onnx", root / "lenet5-report.md"
    )
