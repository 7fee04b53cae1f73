"""x86-64 (``llvm`` kind, x86 triple or an x86 host): parallel over output groups and row tiles,
inner loops vectorised for AVX-512 (16 lanes) or AVX2 (8 lanes)."""

from __future__ import annotations

from tvm import tirx
from tvm.target import Target

from tvm_schedules.kernels import ConvKernel, MatMulKernel
from tvm_schedules.schedules import cpu
from tvm_schedules.schedules.base import LscRule, target_triple

AVX512 = cpu.CpuSchedule(m_tiles=((48, 16), (0, 128)))
"""32 zmm registers: 8 accumulators of 16 rows, 1 tile of 16 rows for short batches."""
AVX2 = cpu.CpuSchedule(m_tiles=((48, 16), (0, 64)), lanes=8)
"""16 ymm registers: up to 8 accumulators of 8 rows."""


class X86(LscRule):
    name = "x86"

    def is_target_available(self, target: Target) -> bool:
        triple = target_triple(target)
        return target.kind.name == "llvm" and triple.startswith(("x86_64", "i686", "i386"))

    def _schedule(self, target: Target) -> cpu.CpuSchedule:
        from tvm.target import codegen

        return AVX512 if codegen.target_has_features("avx512f", target) else AVX2

    def matmul(self, spec: MatMulKernel, target: Target) -> tirx.PrimFunc:
        return cpu.matmul(spec, self._schedule(target))

    def conv(self, spec: ConvKernel, target: Target) -> tirx.PrimFunc:
        return cpu.conv(spec, self._schedule(target))
