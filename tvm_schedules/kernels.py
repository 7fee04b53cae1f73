"""What each LSC kernel computes, independent of the target: its spec, carried by its PrimFunc.

The importer (:mod:`tvm_schedules.importer`) emits one TensorIR PrimFunc per LSC node, the
portable reference schedule of :mod:`tvm_schedules.schedules.cpu` (serial loops, correct on any
``llvm`` target). The function's ``lsc_ort.kernel`` attribute holds the node's spec as JSON; the
schedule rules (:mod:`tvm_schedules.schedules`) read it back with :func:`kernel_spec` and build
the function scheduled for their target.

Kernel arguments (both ops): the activation, the :class:`~tvm_schedules.layouts.ColumnLayout`
arrays (``gptr, rows, values, counts, perm, inverse, blocks``), the bias (zeros when the node has none)
and the output, all float32 / int32.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from tvm_schedules.layouts import LANES, ROW_BLOCK

KERNEL_ATTR = "lsc_ort.kernel"
"""PrimFunc attribute holding a kernel's spec (JSON of a :class:`MatMulKernel` or :class:`ConvKernel`)."""


@dataclass(frozen=True)
class MatMulKernel:
    """``Y [M, N] = alpha * (A [M, K] @ W) + bias`` on the layout of ``W``. ``M`` and the
    layout's round count are symbolic, so layers of one shape share one kernel."""

    k: int
    n: int
    alpha: float = 1.0
    kind: str = "matmul"

    @property
    def groups(self) -> int:
        return max(1, -(-self.n // LANES))

    @property
    def padded_columns(self) -> int:
        return self.groups * LANES

    @property
    def row_blocks(self) -> int:
        return max(1, -(-self.k // ROW_BLOCK))


@dataclass(frozen=True)
class ConvKernel:
    """ONNX ``Conv`` of ``X [B, C, H, W]`` (a 1-D conv has ``H = 1``) with the weight
    ``[M, C/group, kh, kw]`` on its layout (one column per output channel), padding already
    resolved to ``pads = (top, left, bottom, right)``; ``B, H, W`` and the layout's round count
    are symbolic."""

    channels: int
    out_channels: int
    group: int
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]
    kind: str = "conv"

    @property
    def groups(self) -> int:
        return max(1, -(-self.out_channels // LANES))

    @property
    def padded_columns(self) -> int:
        return self.groups * LANES

    @property
    def taps(self) -> int:
        """Rows of the weight matrix: ``C/group * kh * kw``."""
        return self.channels // self.group * self.kernel[0] * self.kernel[1]

    @property
    def row_blocks(self) -> int:
        return max(1, -(-self.taps // ROW_BLOCK))


KernelSpec = MatMulKernel | ConvKernel


def spec_json(spec: KernelSpec) -> str:
    return json.dumps(dataclasses.asdict(spec), sort_keys=True)


def kernel_function(func: Any, spec: KernelSpec) -> Any:
    """``func`` as an LSC kernel: private (no global symbol: the module it joins names it),
    carrying its spec, and marked scheduled so that TVM's default schedules (dlight) leave it."""
    return func.with_attrs({KERNEL_ATTR: spec_json(spec), "tirx.noalias": True, "tirx.is_scheduled": True})


def kernel_spec(func: Any) -> KernelSpec | None:
    """The spec an LSC kernel PrimFunc carries, or ``None`` for any other function."""
    attrs = getattr(func, "attrs", None)
    if attrs is None or KERNEL_ATTR not in attrs:
        return None
    fields = json.loads(str(attrs[KERNEL_ATTR]))
    kind = fields.get("kind")
    if kind == "matmul":
        return MatMulKernel(**fields)
    if kind == "conv":
        for key in ("kernel", "strides", "dilations", "pads"):
            fields[key] = tuple(fields[key])
        return ConvKernel(**fields)
    return None
