"""The schedule-rule interface, after TVM dlight's ``ScheduleRule``: ``apply(func, target)``
returns the function scheduled for ``target``, or ``None`` when the rule does not apply."""

from __future__ import annotations

import abc

from tvm import tirx
from tvm.target import Target

from tvm_schedules.kernels import ConvKernel, KernelSpec, MatMulKernel, kernel_spec


def target_triple(target: Target) -> str:
    """The target's ``mtriple``, or the host's for an ``llvm`` target without one."""
    triple = str(target.attrs.get("mtriple", "") or "")
    if not triple and target.kind.name == "llvm":
        from tvm.target import codegen

        triple = str(codegen.llvm_get_system_triple())
    return triple


class LscRule(abc.ABC):
    """Schedules the LSC kernels (functions carrying a :data:`~tvm_schedules.kernels.KERNEL_ATTR`
    spec) for the targets :meth:`is_target_available` accepts; any other function or target
    gets ``None``."""

    name: str = ""

    @abc.abstractmethod
    def is_target_available(self, target: Target) -> bool:
        """Whether this rule schedules for ``target`` (by its kind and triple)."""

    @abc.abstractmethod
    def matmul(self, spec: MatMulKernel, target: Target) -> tirx.PrimFunc | None:
        """The scheduled LSCMatMul kernel, or ``None`` if this rule has none for ``spec``."""

    @abc.abstractmethod
    def conv(self, spec: ConvKernel, target: Target) -> tirx.PrimFunc | None:
        """The scheduled LSCConv kernel, or ``None`` if this rule has none for ``spec``."""

    def apply(self, func: tirx.PrimFunc, target: Target) -> tirx.PrimFunc | None:
        """``func`` scheduled for ``target``, or ``None`` (not an LSC kernel, or not this rule's target)."""
        spec: KernelSpec | None = kernel_spec(func)
        if spec is None or not self.is_target_available(target):
            return None
        if isinstance(spec, MatMulKernel):
            scheduled = self.matmul(spec, target)
        else:
            scheduled = self.conv(spec, target)
        if scheduled is None:
            return None
        symbol = func.attrs.get("global_symbol") if func.attrs else None
        return scheduled if symbol is None else scheduled.with_attr("global_symbol", symbol)
