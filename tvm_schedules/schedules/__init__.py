"""Schedule rules for the LSC kernels: one module per target, one line each in :data:`RULES`.

The first rule whose target matches (by kind and triple) schedules each LSC kernel, as TVM
dlight's ``ApplyDefaultSchedule`` does with its rules. Adding a target is one module with an
:class:`~tvm_schedules.schedules.base.LscRule` subclass and one line below.
"""

from __future__ import annotations

from collections.abc import Sequence

from tvm import IRModule, tirx
from tvm.target import Target

from tvm_schedules.kernels import kernel_spec
from tvm_schedules.schedules.aarch64 import Aarch64
from tvm_schedules.schedules.base import LscRule
from tvm_schedules.schedules.cuda import Cuda
from tvm_schedules.schedules.generic import GenericCpu
from tvm_schedules.schedules.x86 import X86

RULES: tuple[LscRule, ...] = (
    Cuda(),        # kind cuda: thread blocks, shared-memory activation tiles
    Aarch64(),     # kind llvm, aarch64 triple: NEON-width vectors
    X86(),         # kind llvm, x86 triple (or host): AVX-512 / AVX2 widths, parallel
    GenericCpu(),  # any other llvm triple
)


def schedule_function(func: tirx.PrimFunc, target: Target, rules: Sequence[LscRule] = RULES) -> tirx.PrimFunc | None:
    """``func`` scheduled by the first rule that applies, or ``None`` if none does."""
    for rule in rules:
        scheduled = rule.apply(func, target)
        if scheduled is not None:
            return scheduled
    return None


def apply_schedules(mod: IRModule, target: Target, rules: Sequence[LscRule] = RULES) -> IRModule:
    """``mod`` with every LSC kernel replaced by its schedule for ``target``; other functions
    are left to TVM's own pipeline.

    Raises:
        ValueError: no rule schedules the LSC kernels for ``target``.
    """
    target = Target(target) if not isinstance(target, Target) else target
    updates = {}
    for gvar, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc) or kernel_spec(func) is None:
            continue
        scheduled = schedule_function(func, target, rules)
        if scheduled is None:
            raise ValueError(f"no LSC schedule for target kind '{target.kind.name}' (kernel {gvar.name_hint}); "
                             f"rules: {', '.join(rule.name for rule in rules)}")
        updates[gvar] = scheduled
    if not updates:
        return mod
    mod = mod.clone() if hasattr(mod, "clone") else IRModule(dict(mod.functions_items()), attrs=mod.attrs)
    for gvar, func in updates.items():
        mod[gvar] = func
    return mod


__all__ = ["RULES", "LscRule", "apply_schedules", "schedule_function"]
