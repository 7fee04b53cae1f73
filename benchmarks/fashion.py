"""LeNet-5 trained and pruned on Fashion-MNIST (Debian ``dataset-fashion-mnist``): test accuracy
before and after pruning, with fp32 and int8 values, and the size of every codec.

The network is Caffe's LeNet-5 (conv 20@5×5, pool, conv 50@5×5, pool, fc 500, fc 10), trained with
PyTorch (the ``train`` extra), pruned to Deep Compression's LeNet-5 densities (conv1 66 %, conv2
12 %, ip1 8 %, ip2 19 % kept) in two magnitude steps with masked fine-tuning, then exported to
ONNX with onnx.helper and evaluated in onnxruntime: dense, pruned, pruned + ``lsc-ort compress``
(must match pruned), pruned with int8 values (symmetric per layer, stored as int8 blobs), and
onnxruntime's dynamic int8 quantization of the pruned model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import lsc_ort
from benchmarks.profiles import profile
from benchmarks.report import MISSING, Table, fmt_bytes, fmt_percent
from benchmarks.sizes import cell, codecs, int8_values
from lsc_ort.entropy import entropy_bound_bytes

KEPT = {layer.name: layer.kept for layer in profile("lenet-5").layers}
"""Deep Compression's LeNet-5 densities, by layer name (conv1, conv2, ip1, ip2)."""


def lenet5_onnx(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Caffe's LeNet-5 as an ONNX graph over ``weights`` (PyTorch layouts, fc as Gemm transB=1)."""
    nodes = [
        helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", kernel_shape=[5, 5]),
        helper.make_node("MaxPool", ["c1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", kernel_shape=[5, 5]),
        helper.make_node("MaxPool", ["c2"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "ip1.weight", "ip1.bias"], ["f1"], name="ip1", transB=1),
        helper.make_node("Relu", ["f1"], ["r1"], name="relu1"),
        helper.make_node("Gemm", ["r1", "ip2.weight", "ip2.bias"], ["logits"], name="ip2", transB=1),
    ]
    graph = helper.make_graph(nodes, "lenet5_fashion",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
                              [numpy_helper.from_array(np.ascontiguousarray(v, np.float32), k)
                               for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="lsc-ort bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def train(data: tuple[np.ndarray, ...], epochs: int, finetune_epochs: int, subset: int | None,
          progress: Callable[[str], None]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """(dense weights, pruned weights, seconds): trained, then pruned in two steps with masked
    fine-tuning to :data:`KEPT`."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(1)  # training is not what we measure; 1 thread never oversubscribes
    train_x, train_y = (torch.from_numpy(a[:subset]) for a in data[:2])
    model = nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
    layers: dict[str, Any] = {"conv1": model[0], "conv2": model[2], "ip1": model[5], "ip2": model[7]}
    masks: dict[str, Any] = {}
    start = time.perf_counter()

    def epoch(optimizer: Any, label: str) -> None:
        order = torch.randperm(len(train_x))
        model.train()
        for first in range(0, len(order), 128):
            batch = order[first:first + 128]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for name, mask in masks.items():
                    layers[name].weight.mul_(mask)
        progress(f"fashion: {label}, loss {loss.item():.3f}")

    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for index in range(epochs):
        epoch(optimizer, f"dense epoch {index + 1}/{epochs}")
    dense = {f"{n}.{p}": getattr(layer, p).detach().numpy().copy() for n, layer in layers.items()
             for p in ("weight", "bias")}
    for step in (0.5, 1.0):  # halfway to the target sparsity, then the target
        with torch.no_grad():
            for name, layer in layers.items():
                weight = layer.weight
                keep = 1.0 - step * (1.0 - KEPT[name])
                count = max(1, round(keep * weight.numel()))
                threshold = weight.abs().flatten().kthvalue(weight.numel() - count + 1).values
                masks[name] = (weight.abs() >= threshold).float()
                weight.mul_(masks[name])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        for index in range(finetune_epochs):
            epoch(optimizer, f"pruned to {step:.0%} of the target, fine-tune {index + 1}/{finetune_epochs}")
    pruned = {f"{n}.{p}": getattr(layer, p).detach().numpy().copy() for n, layer in layers.items()
              for p in ("weight", "bias")}
    for name in layers:  # -0.0 left by the mask: store +0.0
        pruned[f"{name}.weight"][pruned[f"{name}.weight"] == 0] = 0.0
    return dense, pruned, time.perf_counter() - start


def accuracy(path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), lsc_ort.session_options(), providers=["CPUExecutionProvider"])
    correct = 0
    for first in range(0, len(images), 1000):
        logits = session.run(None, {"image": images[first:first + 1000]})[0]
        correct += int((logits.argmax(1) == labels[first:first + 1000]).sum())
    return correct / len(images)


def fashion_table(quick: bool, workdir: Path, progress: Callable[[str], None] = print) -> Table:
    names = codecs()
    table = Table("sizes-fashion", "LeNet-5 trained and pruned on Fashion-MNIST: test accuracy and weight sizes "
                  "(ratio vs dense fp32, bits per weight)",
                  ["model", "values", "test accuracy", "file", "entropy bound", *names, "auto"])
    try:
        from lsc_ort.train.data import DatasetUnavailable, load_fashion_mnist  # needs PyTorch
    except ImportError:
        table.notes.append("skipped: PyTorch is not installed (pip install -e .[train])")
        return table
    try:
        data = load_fashion_mnist()
    except DatasetUnavailable as error:
        table.notes.append(f"skipped: {error}")
        return table
    from benchmarks.models import quantize_int8
    from lsc_ort.rewriter import compress_file

    epochs, finetune, subset = (1, 1, 3_000) if quick else (4, 2, None)
    dense_w, pruned_w, seconds = train(data, epochs, finetune, subset, progress)
    test_x, test_y = data[2], data[3]
    int8_w = dict(pruned_w)
    scales = {}
    for name in KEPT:
        codes, scales[name] = int8_values(pruned_w[f"{name}.weight"])
        int8_w[f"{name}.weight"] = codes.astype(np.float32) * np.float32(scales[name])
    workdir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for label, weights in (("dense", dense_w), ("pruned", pruned_w), ("pruned-int8", int8_w)):
        files[label] = workdir / f"fashion-lenet5-{label}.onnx"
        onnx.save(lenet5_onnx(weights), str(files[label]))
    files["compressed"] = workdir / "fashion-lenet5-lsc.onnx"
    compress_file(files["pruned"], files["compressed"], min_sparsity=0.0)
    notes: list[str] = []
    ort_int8 = quantize_int8(files["pruned"], workdir / "fashion-lenet5-ort-int8.onnx", notes)
    if ort_int8 is not None:
        files["ort-int8"] = ort_int8
    progress("fashion: test accuracy")
    acc = {label: accuracy(path, test_x, test_y) for label, path in files.items()}
    dense_bytes = sum(4 * pruned_w[f"{n}.weight"].size for n in KEPT)
    numel = dense_bytes // 4

    def sizes(dtype: str) -> tuple[dict[str, float], float]:
        totals = dict.fromkeys([*names, "auto"], 0.0)
        bound = 0.0
        for name in KEPT:
            weight = pruned_w[f"{name}.weight"]
            values, scale = int8_values(weight) if dtype == "int8" else (weight, None)
            nnz = int(np.count_nonzero(values))
            bound += entropy_bound_bytes(values.size, nnz, 8 if dtype == "int8" else 32)
            for codec in [*names, "auto"]:
                totals[codec] += len(lsc_ort.encode(values, codec, scale=scale) if scale else
                                     lsc_ort.encode(values, codec))
        return totals, bound

    table.add("LeNet-5 dense", "fp32", fmt_percent(acc["dense"], 2), fmt_bytes(files["dense"].stat().st_size),
              MISSING, *([MISSING] * len(names)), MISSING)
    ratios = {}
    for label, dtype in (("pruned", "float32"), ("pruned-int8", "int8")):
        totals, bound = sizes(dtype)
        ratios[label] = {"lsc": dense_bytes / totals["lsc"], "auto": dense_bytes / totals["auto"],
                         "bound": dense_bytes / bound}
        table.add(f"LeNet-5 pruned ({fmt_percent(1 - profile('lenet-5').kept)} sparse)",
                  "int8 codes" if dtype == "int8" else "fp32", fmt_percent(acc[label], 2),
                  fmt_bytes(files[label].stat().st_size) if dtype != "int8" else MISSING,
                  cell(dense_bytes / bound, 8 * bound / numel),
                  *(cell(dense_bytes / totals[c], 8 * totals[c] / numel) for c in [*names, "auto"]))
    table.add("pruned + lsc-ort compress", "fp32", fmt_percent(acc["compressed"], 2),
              fmt_bytes(files["compressed"].stat().st_size), MISSING, *([MISSING] * len(names)), MISSING)
    if "ort-int8" in acc:
        table.add("pruned + onnxruntime dynamic int8", "int8 (+ activations)", fmt_percent(acc["ort-int8"], 2),
                  fmt_bytes(files["ort-int8"].stat().st_size), MISSING, *([MISSING] * len(names)), MISSING)
    schedule = ("quick: 1 epoch on 3,000 images, 1 fine-tune epoch per pruning step, so accuracy is low" if quick
                else "4 epochs, SGD with momentum, 2 fine-tune epochs per pruning step")
    table.notes = [
        f"Trained here with PyTorch ({schedule}; {seconds:.0f} s), "
        "pruned to Deep Compression's LeNet-5 densities (conv1 66%, conv2 12%, ip1 8%, ip2 19% kept) by magnitude "
        "in two steps; test accuracy on the 10,000 Fashion-MNIST test images in onnxruntime. The pruned rows had "
        f"{2 * finetune} more (masked) epochs than the dense one, which is why they can score higher.",
        "int8 codes: each pruned layer's non-zeros as symmetric per-layer int8 (scale = max|w|/127, zeros kept), "
        "evaluated with the dequantized weights and stored as int8 blobs. Sizes: weights of the 4 layers, whole "
        "blobs; ratio vs their dense fp32 bytes.",
        f"Deep Compression reports 39× on LeNet-5 (MNIST) with 5–8-bit quantization and Huffman coding "
        f"{'(quoted)'}; the accuracy cost here is measured, not quoted.",
        *notes,
    ]
    table.data = {"accuracy": acc, "ratios": ratios, "quick": quick}
    return table
