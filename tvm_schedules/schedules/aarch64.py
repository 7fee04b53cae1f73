"""aarch64 (``llvm`` kind, ``aarch64*`` triple): NEON-width vectorisation. Lane loops of 16
become four 128-bit registers, row tiles of 64 sixteen, so accumulators stay in the 32 NEON
registers; parallel over output groups and row tiles."""

from __future__ import annotations

from tvm import tirx
from tvm.target import Target

from tvm_schedules.kernels import ConvKernel, MatMulKernel
from tvm_schedules.schedules import cpu
from tvm_schedules.schedules.base import LscRule, target_triple

NEON = cpu.CpuSchedule(m_tiles=((48, 16), (0, 64)), lanes=4)
"""Vector loops of 4 floats, one 128-bit NEON register each."""


class Aarch64(LscRule):
    name = "aarch64"

    def is_target_available(self, target: Target) -> bool:
        return target.kind.name == "llvm" and target_triple(target).startswith(("aarch64", "arm64"))

    def matmul(self, spec: MatMulKernel, target: Target) -> tirx.PrimFunc:
        return cpu.matmul(spec, NEON)

    def conv(self, spec: ConvKernel, target: Target) -> tirx.PrimFunc:
        return cpu.conv(spec, NEON)
