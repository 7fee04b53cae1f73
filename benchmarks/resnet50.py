"""ResNet-50 for the benchmarks, built from onnx's own ``light_resnet50.onnx`` graph (shipped in
the onnx package under ``backend/test/data/light/``) with its placeholder weights replaced by
seeded random ones, and a TensorFlow-style variant of it.

* :func:`resnet50` — the Caffe2 ResNet-50 graph (Conv + BatchNormalization + Relu + Sum), NCHW.
  Conv weights are He-initialised, BatchNormalization statistics are set so that each layer
  keeps its activations near unit scale, and the classifier is a random Gemm; the model is
  upgraded to opset 13.
* :func:`tensorflow_style` — the same network as a TensorFlow exporter writes it: an NHWC input,
  ``Transpose`` to NCHW before and back to NHWC after every Conv and pooling, and each
  BatchNormalization as ``Sub`` / ``Mul`` / ``Add`` on the NHWC tensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

LIGHT_RESNET50 = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"
INPUT_SHAPE = (1, 3, 224, 224)


def resnet50(seed: int = 0) -> onnx.ModelProto:
    """ResNet-50 with seeded random weights (see the module docstring)."""
    source = onnx.load(str(LIGHT_RESNET50))
    rng = np.random.default_rng(seed)
    graph = source.graph
    shapes = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    produced = {}  # ConstantOfShape output -> its shape
    nodes = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape":
            produced[node.output[0]] = tuple(int(d) for d in shapes[node.input[0]])
        else:
            nodes.append(node)
    values: dict[str, np.ndarray] = {}
    consumers = {name: n for n in nodes for name in n.input}
    for name, shape in produced.items():
        user = consumers.get(name)
        if user is None:
            continue
        if user.op_type == "Conv":
            fan_in = int(np.prod(shape[1:]))
            values[name] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        elif user.op_type == "Gemm":
            fan_in = shape[1] if len(shape) == 2 else 1
            values[name] = (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)
        else:
            values[name] = None  # BatchNormalization parameters: below
    for node in nodes:
        if node.op_type != "BatchNormalization":
            continue
        scale, bias, mean, var = node.input[1:5]
        channels = produced[scale][0] if scale in produced else shapes[scale].shape[0]
        last = "branch2c" in "".join(node.input)  # the last BN of a residual branch starts small
        values[scale] = rng.uniform(0.2, 0.4, channels) if last else rng.uniform(0.8, 1.2, channels)
        values[bias] = rng.normal(0.0, 0.1, channels)
        values[mean] = rng.normal(0.0, 0.1, channels)
        values[var] = rng.uniform(0.8, 1.2, channels)
    used = {name for n in nodes for name in n.input}
    for name, value in shapes.items():  # other initializers the graph reads (the Reshape's shape)
        if name in used and name not in values:
            values[name] = value
    data = graph.input[0]
    initializers = [numpy_helper.from_array(np.asarray(values[name]).astype(
        np.float32 if np.asarray(values[name]).dtype.kind == "f" else np.asarray(values[name]).dtype), name)
        for name in sorted(values) if name in used]
    new_graph = helper.make_graph(nodes, "resnet50", [data], list(graph.output), initializers)
    for n in new_graph.node:
        if not n.name:
            n.name = n.output[0].removeprefix("gpu_0/")
    model = helper.make_model(new_graph, opset_imports=[helper.make_opsetid("", 9)], producer_name="lsc-ort")
    model.ir_version = 8
    model = version_converter.convert_version(model, 13)
    onnx.checker.check_model(model)
    return model


def tensorflow_style(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` (NCHW, from :func:`resnet50`) rewritten as a TensorFlow exporter writes it: NHWC
    tensors between ops, Transposes around every Conv / pooling op, BatchNormalization as
    ``Sub`` / ``Mul`` / ``Add`` with [C] constants."""
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    data = graph.input[0].name
    nhwc_input = data + "_nhwc"

    def nchw(name: str, label: str) -> str:
        out = f"{label}/to_nchw"
        nodes.append(helper.make_node("Transpose", [name], [out], name=f"{label}/Transpose_in", perm=[0, 3, 1, 2]))
        return out

    for node in graph.node:
        label = node.name or node.output[0]
        ins = [nhwc_input if i == data else i for i in node.input]
        if node.op_type in ("Conv", "MaxPool", "AveragePool"):
            inner = helper.make_node(node.op_type, [nchw(ins[0], label), *ins[1:]], [f"{label}/nchw"], name=node.name)
            inner.attribute.extend(node.attribute)
            nodes.append(inner)
            nodes.append(helper.make_node("Transpose", [f"{label}/nchw"], [node.output[0]],
                                          name=f"{label}/Transpose_out", perm=[0, 2, 3, 1]))
        elif node.op_type == "BatchNormalization":
            gamma, beta, mean, var = (inits[i] for i in node.input[1:5])
            epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            scale = (gamma / np.sqrt(var + np.float32(epsilon))).astype(np.float32)
            for suffix, value in (("mean", mean), ("scale", scale), ("beta", beta)):
                new_inits.append(numpy_helper.from_array(value.astype(np.float32), f"{label}/{suffix}"))
            nodes.append(helper.make_node("Sub", [ins[0], f"{label}/mean"], [f"{label}/centered"], name=f"{label}/sub"))
            nodes.append(helper.make_node("Mul", [f"{label}/centered", f"{label}/scale"], [f"{label}/scaled"],
                                          name=f"{label}/mul"))
            nodes.append(helper.make_node("Add", [f"{label}/scaled", f"{label}/beta"], [node.output[0]],
                                          name=f"{label}/add"))
        else:
            copy = helper.make_node(node.op_type, ins, list(node.output), name=node.name, domain=node.domain)
            copy.attribute.extend(node.attribute)
            nodes.append(copy)
    n, c, h, w = (d.dim_value for d in graph.input[0].type.tensor_type.shape.dim)
    inputs = [helper.make_tensor_value_info(nhwc_input, onnx.TensorProto.FLOAT, [n, h, w, c])]
    bn_params = {i for node in graph.node if node.op_type == "BatchNormalization" for i in node.input[1:5]}
    kept = [t for t in graph.initializer if t.name not in bn_params]
    tf_graph = helper.make_graph(nodes, "resnet50_tf", inputs, list(graph.output), kept + new_inits)
    tf = helper.make_model(tf_graph, opset_imports=list(model.opset_import), producer_name="lsc-ort")
    tf.ir_version = model.ir_version
    onnx.checker.check_model(tf)
    return tf
