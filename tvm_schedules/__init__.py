"""Compile models rewritten by lsc-ort with Apache TVM, for CPU (x86), GPU (CUDA) and ARM (aarch64).

Three lines from a compressed ``.onnx`` to outputs::

    import tvm_schedules
    executable = tvm_schedules.compile("compressed.onnx", "cpu")      # or "cuda", "arm", a TVM target
    outputs = tvm_schedules.run(executable, {"input": x})

* :func:`from_onnx` imports a model: standard ops through TVM's Relax ONNX importer, each
  ``LSCMatMul`` / ``LSCConv`` a ``call_tir`` of a TensorIR kernel that reads the weight in a
  compressed column layout derived from the blob (:mod:`tvm_schedules.layouts`);
* :func:`apply_schedules` schedules those kernels for a target: one rule module per target in
  :mod:`tvm_schedules.schedules` (x86, aarch64, cuda, generic ``llvm``);
* :func:`compile` does both and builds; :func:`run` runs on this machine;
  :meth:`Executable.export_library` writes a shared library (``lsc-ort tvm-compile``).

Needs ``apache-tvm`` 0.27 (``pip install 'lsc-ort[tvm]'``); ``import lsc_ort`` never imports TVM.
"""

from __future__ import annotations

from tvm_schedules._tvm import TvmUnavailableError, require_tvm

require_tvm()

from tvm_schedules.build import TARGET_NAMES, Executable, compile, resolve_target, run  # noqa: E402
from tvm_schedules.importer import from_onnx  # noqa: E402
from tvm_schedules.layouts import LscImportError  # noqa: E402
from tvm_schedules.schedules import RULES, apply_schedules  # noqa: E402

__all__ = [
    "RULES",
    "TARGET_NAMES",
    "Executable",
    "LscImportError",
    "TvmUnavailableError",
    "apply_schedules",
    "compile",
    "from_onnx",
    "resolve_target",
    "run",
]
