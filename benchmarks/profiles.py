"""Per-layer sparsity profiles the papers report, and the figures they quote.

Layer shapes are the networks' own (Caffe / PyTorch layout: fully connected ``out × in``,
convolution ``out × in/groups × kh × kw``); densities are the papers' kept-weight fractions per
layer. The benchmark fills each layer with a seeded uniformly random mask at that density and
standard-normal values: the papers' masks are not public, so real masks may have more structure
(dead rows, clustered zeros) than ours. Sources in :data:`PROFILES` and in each table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from benchmarks.bench_encode import ADMM_LENET


@dataclass(frozen=True)
class Layer:
    name: str
    shape: tuple[int, ...]
    kept: float
    """Fraction of weights kept (density)."""

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nnz(self) -> int:
        return round(self.kept * self.size)


@dataclass(frozen=True)
class QuotedFigure:
    """A compression ratio a paper reports for this network (never measured here)."""

    method: str
    ratio: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class Profile:
    key: str
    network: str
    layers: tuple[Layer, ...]
    source: str
    """Where the shapes and densities come from, and what we assumed."""
    quoted: tuple[QuotedFigure, ...] = ()
    quick: bool = True
    """Part of ``--quick`` (the small networks)."""

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def nnz(self) -> int:
        return sum(layer.nnz for layer in self.layers)

    @property
    def kept(self) -> float:
        return self.nnz / self.size


DEEP_COMPRESSION = "Deep Compression (Han, Mao, Dally, ICLR 2016)"
DC_NOTE = "pruning + trained quantization (5–8 bits) + Huffman coding: lossy values, unlike ours"


def _layers(rows: list[tuple[str, tuple[int, ...], float]]) -> tuple[Layer, ...]:
    return tuple(Layer(name, shape, kept) for name, shape, kept in rows)


_VGG16_CONV = [("conv1_1", 3, 64, 0.58), ("conv1_2", 64, 64, 0.22), ("conv2_1", 64, 128, 0.34),
               ("conv2_2", 128, 128, 0.36), ("conv3_1", 128, 256, 0.53), ("conv3_2", 256, 256, 0.24),
               ("conv3_3", 256, 256, 0.42), ("conv4_1", 256, 512, 0.32), ("conv4_2", 512, 512, 0.27),
               ("conv4_3", 512, 512, 0.34), ("conv5_1", 512, 512, 0.35), ("conv5_2", 512, 512, 0.29),
               ("conv5_3", 512, 512, 0.36)]

RESNET50_KEPT = 0.10
"""Assumed uniform density of the ResNet-50 profile (no paper we have gives a per-layer one)."""


@cache
def resnet50_shapes() -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(layer, weight shape) of every Conv and the Gemm of onnx's ``light_resnet50.onnx`` graph."""
    import onnx
    from onnx import numpy_helper

    from benchmarks.resnet50 import LIGHT_RESNET50

    model = onnx.load(str(LIGHT_RESNET50))
    shapes = {t.name: tuple(int(d) for d in numpy_helper.to_array(t)) for t in model.graph.initializer
              if t.name.endswith("__SHAPE")}
    producer = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "ConstantOfShape"}
    found = []
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and node.input[1] in producer:
            name = node.input[1].removeprefix("gpu_0/").removesuffix("_w_0")
            found.append((name, shapes[producer[node.input[1]]]))
    return tuple(found)


def _resnet50_layers() -> tuple[Layer, ...]:
    return tuple(Layer(name, shape, RESNET50_KEPT) for name, shape in resnet50_shapes())


PROFILES: tuple[Profile, ...] = (
    Profile("lenet-300-100", "LeNet-300-100",
            _layers([("ip1", (300, 784), 0.08), ("ip2", (100, 300), 0.09), ("ip3", (10, 100), 0.26)]),
            f"densities from {DEEP_COMPRESSION}",
            (QuotedFigure("Deep Compression", 40, DEEP_COMPRESSION, DC_NOTE),)),
    Profile("lenet-5", "LeNet-5 (Caffe)",
            _layers([("conv1", (20, 1, 5, 5), 0.66), ("conv2", (50, 20, 5, 5), 0.12), ("ip1", (500, 800), 0.08),
                     ("ip2", (10, 500), 0.19)]),
            f"densities from {DEEP_COMPRESSION}",
            (QuotedFigure("Deep Compression", 39, DEEP_COMPRESSION, DC_NOTE),)),
    Profile("admm-lenet", "ADMM-LeNet (LeNet-5 pruned by ADMM)", _layers(ADMM_LENET),
            "densities from LSC (Liu et al., AAAI 2020)",
            (QuotedFigure("LSC", 51.03, "LSC (Liu et al., AAAI 2020)", "lossless, fp32 values, like ours"),)),
    Profile("alexnet", "AlexNet (Caffe, grouped conv2/4/5)",
            _layers([("conv1", (96, 3, 11, 11), 0.84), ("conv2", (256, 48, 5, 5), 0.38),
                     ("conv3", (384, 256, 3, 3), 0.35), ("conv4", (384, 192, 3, 3), 0.37),
                     ("conv5", (256, 192, 3, 3), 0.37), ("fc6", (4096, 9216), 0.09), ("fc7", (4096, 4096), 0.09),
                     ("fc8", (1000, 4096), 0.25)]),
            f"densities from {DEEP_COMPRESSION}",
            (QuotedFigure("Deep Compression", 35, DEEP_COMPRESSION, DC_NOTE),), quick=False),
    Profile("vgg-16", "VGG-16",
            _layers([(name, (out, inp, 3, 3), kept) for name, inp, out, kept in _VGG16_CONV]
                    + [("fc6", (4096, 25088), 0.04), ("fc7", (4096, 4096), 0.04), ("fc8", (1000, 4096), 0.23)]),
            f"per-layer densities as we recall them from {DEEP_COMPRESSION}, Table 5 (total 7.5% kept); "
            "the full text was not available offline to re-check them",
            (QuotedFigure("Deep Compression", 49, DEEP_COMPRESSION, DC_NOTE),
             QuotedFigure("DeepCABAC", 63.6, "DeepCABAC (Wiedemann et al. 2019)", "lossy quantization + CABAC")),
            quick=False),
    Profile("resnet-50", "ResNet-50",
            (),  # filled lazily from the light_resnet50 graph: see profile()
            f"layer shapes from onnx's light_resnet50 graph; ASSUMED uniform {RESNET50_KEPT:.0%} kept in every "
            "conv and fc layer (the papers give no per-layer ResNet-50 profile; F2F reports 50–98% sparsity)",
            quick=False),
)


def profile(key: str) -> Profile:
    """The profile ``key`` of :data:`PROFILES` (ResNet-50's layers read from onnx's graph)."""
    for item in PROFILES:
        if item.key == key:
            if key == "resnet-50" and not item.layers:
                return Profile(item.key, item.network, _resnet50_layers(), item.source, item.quoted, item.quick)
            return item
    raise ValueError(f"unknown profile {key!r}; known: {', '.join(p.key for p in PROFILES)}")


def profile_keys(quick: bool) -> list[str]:
    return [p.key for p in PROFILES if p.quick or not quick]


def seeded_layer(layer: Layer, seed: int, rows: int | None = None) -> np.ndarray:
    """The layer's weight with ``layer.nnz`` non-zeros (standard normal) at seeded random positions.

    With ``rows``, only the first ``rows`` rows (first dimension) at the same density: the sample a
    slow codec encodes in place of a huge layer (its size then scales by ``shape[0] / rows``).
    """
    shape = layer.shape if rows is None else (rows, *layer.shape[1:])
    size = int(np.prod(shape, dtype=np.int64))
    nnz = layer.nnz if rows is None else round(layer.kept * size)
    rng = np.random.default_rng([seed, size, nnz])
    weight = np.zeros(size, np.float32)
    positions = rng.choice(size, nnz, replace=False)
    values = rng.standard_normal(nnz).astype(np.float32)
    values[values == 0] = 1.0
    weight[positions] = values
    return weight.reshape(shape)


QUOTED_ELSEWHERE = (
    ("F2F (Park et al., ICLR 2022)", "encoding efficiency “almost the maximum” (E ≈ 1) on pruned Transformer and "
     "ResNet-50 at 50–98% sparsity; the exact E values were not available offline"),
    ("XOR-gate encryption (Kwon et al.)", "0.28 bits per weight on AlexNet FC at 91% pruning (1-bit planes)"),
)
