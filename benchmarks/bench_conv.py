"""LSCConv vs onnxruntime's dense Conv on pruned ResNet-50 / VGG-style layers.

Prints LSCConv time / dense Conv time (same run) per layer, sparsity and thread count.

    python -m benchmarks.bench_conv [--sparsity 0.9]
"""

from __future__ import annotations

import argparse

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import lsc_ort
from benchmarks.bench_matmul import seconds_per_run, session

LAYERS = [  # name, input shape, weight shape, attributes
    ("resnet 3x3 64", (1, 64, 56, 56), (64, 64, 3, 3), {"pads": [1, 1, 1, 1]}),
    ("resnet 1x1 256->64", (1, 256, 56, 56), (64, 256, 1, 1), {}),
    ("resnet 3x3 256 s2", (1, 256, 28, 28), (256, 256, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ("resnet 1x1 512->2048", (1, 512, 7, 7), (2048, 512, 1, 1), {}),
    ("vgg 3x3 128", (1, 128, 112, 112), (128, 128, 3, 3), {"pads": [1, 1, 1, 1]}),
    ("stem 7x7 s2", (1, 3, 224, 224), (64, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}),
    ("depthwise 3x3", (1, 144, 56, 56), (144, 1, 3, 3), {"pads": [1, 1, 1, 1], "group": 144}),
]


def model(node_name: str, weight_input: object, x_shape: tuple[int, ...], attributes: dict[str, object],
          domain: str = "") -> bytes:
    node = helper.make_node(node_name, ["X", "W"], ["Y"], domain=domain, **attributes)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], [weight_input])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.7, 0.9])
    parser.add_argument("--budget", type=float, default=0.5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'layer':>22} {'sparsity':>8} {'threads':>7} {'dense us':>10} {'lsc us':>10} {'lsc/dense':>9}")
    for name, x_shape, w_shape, attributes in LAYERS:
        x = rng.standard_normal(x_shape).astype(np.float32)
        for sparsity in args.sparsity:
            w = rng.standard_normal(w_shape).astype(np.float32)
            w.reshape(-1)[rng.choice(w.size, round(sparsity * w.size), replace=False)] = 0.0
            dense_model = model("Conv", numpy_helper.from_array(w, "W"), x_shape, attributes)
            blob = np.frombuffer(lsc_ort.encode(w, "lsc"), np.uint8)
            lsc_model = model("LSCConv", numpy_helper.from_array(blob, "W"), x_shape, attributes, lsc_ort.DOMAIN)
            for threads in (1, 2):
                t_dense = seconds_per_run(session(dense_model, threads, custom=False), {"X": x}, args.budget)
                t_lsc = seconds_per_run(session(lsc_model, threads, custom=True), {"X": x}, args.budget)
                print(f"{name:>22} {sparsity:>8.0%} {threads:>7} {t_dense * 1e6:>10.1f} {t_lsc * 1e6:>10.1f} "
                      f"{t_lsc / t_dense:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
