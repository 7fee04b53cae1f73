"""Any other ``llvm`` target (riscv, ppc, ...): parallel loops, vector loops of generic width."""

from __future__ import annotations

from tvm import tirx
from tvm.target import Target

from tvm_schedules.kernels import ConvKernel, MatMulKernel
from tvm_schedules.schedules import cpu
from tvm_schedules.schedules.base import LscRule

GENERIC = cpu.CpuSchedule(m_tiles=((48, 16), (0, 32)), lanes=4)


class GenericCpu(LscRule):
    name = "generic-cpu"

    def is_target_available(self, target: Target) -> bool:
        return target.kind.name == "llvm"

    def matmul(self, spec: MatMulKernel, target: Target) -> tirx.PrimFunc:
        return cpu.matmul(spec, GENERIC)

    def conv(self, spec: ConvKernel, target: Target) -> tirx.PrimFunc:
        return cpu.conv(spec, GENERIC)
