"""``compile`` and ``run``: a rewritten model to a TVM executable, and feeds to outputs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from tvm_schedules import _tvm
from tvm_schedules.importer import from_onnx

tvm = _tvm.require_tvm()
from tvm import relax  # noqa: E402
from tvm.target import Target  # noqa: E402

from tvm_schedules.schedules import apply_schedules  # noqa: E402

ARM_TRIPLE = "aarch64-linux-gnu"
ARM_CROSS_COMPILER = "aarch64-linux-gnu-g++"
DEFAULT_CUDA_ARCH = "sm_80"
"""CUDA architecture of ``"cuda"`` when no GPU is present to ask."""
TARGET_NAMES = ("cpu", "cuda", "arm")


def resolve_target(target: str | Mapping[str, Any] | Target) -> Target:
    """A TVM target from ``"cpu"`` (this host's CPU), ``"arm"`` (aarch64 Linux with NEON),
    ``"cuda"`` (this host's GPU, or ``sm_80`` without one), a target dict, its JSON text, or a
    ``tvm.target.Target``.

    Raises:
        ValueError: the target is not understood.
    """
    if isinstance(target, Target):
        return target
    if isinstance(target, Mapping):
        return Target(dict(target))
    text = str(target).strip()
    if text == "cpu":
        from tvm.target import codegen

        return Target({"kind": "llvm", "mcpu": str(codegen.llvm_get_system_cpu())})
    if text == "arm":
        return Target({"kind": "llvm", "mtriple": ARM_TRIPLE, "mattr": ["+neon"]})
    if text == "cuda":
        device = tvm.cuda(0)
        arch = f"sm_{device.compute_version.replace('.', '')}" if device.exist else DEFAULT_CUDA_ARCH
        return Target({"kind": "cuda", "arch": arch})
    try:
        return Target(json.loads(text) if text.startswith("{") else text)
    except Exception as error:
        raise ValueError(f"unknown target {text!r}: use cpu, cuda, arm, a TVM target dict or its JSON "
                         f"({' '.join(str(error).split())[:200]})") from None


def _is_cross(target: Target) -> bool:
    if target.kind.name != "llvm":
        return False
    from tvm.target import codegen

    triple = str(target.attrs.get("mtriple", "") or "")
    host = str(codegen.llvm_get_system_triple())
    return bool(triple) and triple.split("-")[0] != host.split("-")[0]


@dataclass
class Executable:
    """A compiled model: TVM's Relax VM executable and what :func:`run` needs to call it."""

    module: Any
    """The ``tvm.runtime.Executable`` of ``tvm.compile``."""
    target: Target
    inputs: list[tuple[str, str]]
    """(name, numpy dtype) of each graph input, in the order ``main`` takes them."""
    outputs: list[str]
    _vm: Any = field(default=None, repr=False)

    @property
    def device(self) -> Any:
        return tvm.cuda(0) if self.target.kind.name == "cuda" else tvm.cpu(0)

    def vm(self) -> Any:
        """The Relax virtual machine of this executable, on its device (created once)."""
        if _is_cross(self.target):
            raise RuntimeError(f"this executable is compiled for {self.target.attrs.get('mtriple')}; export it "
                               "with export_library and run it there")
        if self._vm is None:
            if not self.device.exist:
                raise RuntimeError(f"no {self.target.kind.name} device to run on")
            with _tvm.cuda_compiler():
                self._vm = relax.VirtualMachine(self.module, self.device)
        return self._vm

    def export_library(self, path: str | os.PathLike[str]) -> Path:
        """Write the executable as a shared library (cross-linked with ``aarch64-linux-gnu-g++``
        for aarch64 targets); an interrupted write leaves any existing file intact."""
        path = Path(path)
        options: dict[str, Any] = {}
        if self.target.kind.name == "llvm" and str(self.target.attrs.get("mtriple", "")).startswith("aarch64"):
            if shutil.which(ARM_CROSS_COMPILER) is None:
                raise RuntimeError(f"cross-compiling for aarch64 needs {ARM_CROSS_COMPILER} "
                                   "(Debian: apt-get install g++-aarch64-linux-gnu)")
            options["fcompile"] = _tvm.cross_compiler(ARM_CROSS_COMPILER)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".so", dir=path.parent or ".")
        os.close(fd)
        try:
            with _tvm.cuda_compiler():
                self.module.export_library(temp, **options)
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o755
            os.chmod(temp, mode)
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        return path


def _graph_io(model: onnx.ModelProto) -> tuple[list[tuple[str, str]], list[str]]:
    initializers = {t.name for t in model.graph.initializer}
    inputs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        elem = value.type.tensor_type.elem_type
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem)).name if elem else "float32"
        inputs.append((value.name, dtype))
    return inputs, [value.name for value in model.graph.output]


def compile(model: onnx.ModelProto | str | os.PathLike[str], target: str | Mapping[str, Any] | Target = "cpu",
            shape_dict: Mapping[str, Sequence[int | str]] | None = None) -> Executable:
    """Compile a rewritten model with TVM.

    Args:
        model: a ModelProto or path with ``LSCMatMul`` / ``LSCConv`` nodes (or none).
        target: ``"cpu"``, ``"cuda"``, ``"arm"`` or any TVM target (see :func:`resolve_target`).
        shape_dict: input name -> shape (ints, or names for symbolic dimensions), for inputs
            whose shape the model leaves open.

    Returns:
        An :class:`Executable` for :func:`run` or :meth:`Executable.export_library`.
    """
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(os.fspath(model))
    resolved = resolve_target(target)
    mod = apply_schedules(from_onnx(model, shape_dict), resolved)
    with _tvm.cuda_compiler():
        module = tvm.compile(mod, target=resolved)
    inputs, outputs = _graph_io(model)
    return Executable(module=module, target=resolved, inputs=inputs, outputs=outputs)


def run(executable: Executable, feeds: Mapping[str, Any] | Sequence[Any]) -> list[np.ndarray]:
    """Run a compiled model on this machine.

    Args:
        executable: from :func:`compile`.
        feeds: input name -> array (or the arrays in graph-input order).

    Returns:
        The outputs, in graph-output order.
    """
    names = [name for name, _ in executable.inputs]
    if isinstance(feeds, Mapping):
        missing = [name for name in names if name not in feeds]
        extra = sorted(set(feeds) - set(names))
        if missing or extra:
            raise ValueError(f"feeds must name the inputs {names}; missing {missing}, unknown {extra}")
        arrays = [feeds[name] for name in names]
    else:
        arrays = list(feeds)
        if len(arrays) != len(names):
            raise ValueError(f"expected {len(names)} inputs ({names}), got {len(arrays)}")
    device = executable.device
    vm = executable.vm()
    args = [tvm.runtime.tensor(np.ascontiguousarray(np.asarray(a, dtype=dtype)), device)
            for a, (_, dtype) in zip(arrays, executable.inputs, strict=True)]
    result = vm["main"](*args)
    items = [result] if hasattr(result, "numpy") else list(result)
    return [np.asarray(item.numpy()) for item in items]
