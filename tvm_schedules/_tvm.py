"""The one adapter between lsc-ort and Apache TVM's version-sensitive or private interfaces.

Everything here may change with a TVM release; the rest of ``tvm_schedules`` uses public TVM
APIs only. What this module touches, and why:

* the private converter table ``_get_convert_map`` of TVM's Relax ONNX importer, which has no
  public hook for custom operators (:func:`onnx_converters`);
* the environment TVM's CUDA compile callback reads (``TVM_CUDA_COMPILE_MODE``, ``nvcc`` on
  ``PATH``), so that CUDA code builds with ``nvcc`` where NVRTC's Python bindings are absent
  (:func:`cuda_compiler`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

SUPPORTED = ((0, 27),)
"""The (major, minor) TVM releases this adapter was written against (``apache-tvm`` 0.27)."""

INSTALL_HINT = "install it with: pip install 'lsc-ort[tvm]' (apache-tvm 0.27)"


class TvmUnavailableError(ImportError):
    """Apache TVM is missing, or its version is not one :data:`SUPPORTED` names."""


def _version_tuple(version: str) -> tuple[int, int]:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (-1, -1)


def require_tvm() -> Any:
    """The ``tvm`` module, checked to be a supported release.

    Raises:
        TvmUnavailableError: TVM is not installed or has an unsupported version.
    """
    try:
        tvm = importlib.import_module("tvm")
    except ImportError as error:
        raise TvmUnavailableError(f"tvm_schedules needs Apache TVM, which is not importable ({error}); "
                                  f"{INSTALL_HINT}") from error
    version = str(getattr(tvm, "__version__", "unknown"))
    if _version_tuple(version) not in SUPPORTED:
        wanted = ", ".join(f"{major}.{minor}" for major, minor in SUPPORTED)
        raise TvmUnavailableError(
            f"tvm_schedules supports Apache TVM {wanted}, found {version}; {INSTALL_HINT}")
    return tvm


# --- the Relax ONNX importer's converter table ---------------------------------------------------

_FRONTEND = "tvm.relax.frontend.onnx.onnx_frontend"
_TABLE = "_get_convert_map"
_LOCK = threading.RLock()


@contextlib.contextmanager
def onnx_converters(converters: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, TVM's ONNX importer also converts the op types in ``converters``.

    Each value is an ``OnnxOpConverter``-style object: ``get_converter(opset)`` returns
    ``f(bb, inputs, attrs, params)``, which returns the node's Relax expression. The importer
    looks its table up through the module-level function ``_get_convert_map`` on every node;
    this wraps that function for the duration of the block (under a lock, so concurrent
    imports do not interleave) and restores it after.

    Raises:
        TvmUnavailableError: this TVM's importer has no such table (an unsupported release).
    """
    require_tvm()
    frontend = importlib.import_module(_FRONTEND)
    original: Callable[[], dict[str, Any]] | None = getattr(frontend, _TABLE, None)
    if original is None or not callable(original) or not isinstance(original(), dict):
        raise TvmUnavailableError(
            f"this TVM's ONNX importer ({_FRONTEND}) has no converter table {_TABLE}(); "
            f"tvm_schedules cannot add LSCMatMul / LSCConv to it; {INSTALL_HINT}")

    def extended() -> dict[str, Any]:
        table = dict(original())
        table.update(converters)
        return table

    with _LOCK:
        setattr(frontend, _TABLE, extended)
        try:
            yield
        finally:
            setattr(frontend, _TABLE, original)


# --- CUDA compilation ----------------------------------------------------------------------------

_CUDA_MODE = "TVM_CUDA_COMPILE_MODE"


def find_nvcc() -> Path | None:
    """An ``nvcc`` executable: on ``PATH``, under ``CUDA_PATH`` / ``CUDA_HOME``, in
    ``/usr/local/cuda``, or from the ``nvidia-cuda-nvcc`` wheels that ship one."""
    found = shutil.which("nvcc")
    if found:
        return Path(found)
    roots = [os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    for package in ("nvidia.cuda_nvcc", "nvidia.cu13", "nvidia.cu12"):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            roots.extend(spec.submodule_search_locations)
    for root in roots:
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return Path(root) / "bin" / "nvcc"
    return None


def nvrtc_available() -> bool:
    """Whether NVRTC's Python bindings (``cuda.bindings``), TVM's default CUDA compiler, exist."""
    try:
        return importlib.util.find_spec("cuda.bindings") is not None
    except (ImportError, ValueError):
        return False


@contextlib.contextmanager
def cuda_compiler() -> Iterator[None]:
    """Within the block, TVM compiles CUDA code with NVRTC if its bindings are installed, else
    with ``nvcc`` (found by :func:`find_nvcc` and put on ``PATH``). A ``TVM_CUDA_COMPILE_MODE``
    the user set is left alone."""
    saved = {key: os.environ.get(key) for key in (_CUDA_MODE, "PATH")}
    try:
        if _CUDA_MODE not in os.environ and not nvrtc_available():
            os.environ[_CUDA_MODE] = "nvcc"
        if os.environ.get(_CUDA_MODE, "nvrtc").lower() == "nvcc" and shutil.which("nvcc") is None:
            nvcc = find_nvcc()
            if nvcc is not None:
                os.environ["PATH"] = f"{nvcc.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def compile_cuda_to_ptx(source: str, arch: str) -> str:
    """PTX of a CUDA source (TVM's generated kernels) for ``arch`` (e.g. ``"sm_80"``), built with
    ``nvcc``; needs no GPU.

    Raises:
        RuntimeError: no nvcc was found, or it failed.
    """
    tvm = require_tvm()
    nvcc_module = importlib.import_module("tvm.support.nvcc")
    if find_nvcc() is None:
        raise RuntimeError("no nvcc found (PATH, CUDA_PATH, /usr/local/cuda, nvidia-cuda-nvcc wheels)")
    with cuda_compiler(), tvm.target.Target({"kind": "cuda", "arch": arch}):
        ptx = nvcc_module.compile_cuda(source, target_format="ptx", arch=arch, compiler="nvcc")
    return bytes(ptx).decode("utf-8", errors="replace")


def cross_compiler(compiler: str) -> Callable[..., None]:
    """An ``export_library`` ``fcompile`` that links with ``compiler`` (e.g. a cross g++)."""
    cc = importlib.import_module("tvm.support.cc")
    return cc.cross_compiler(compiler)


def cuda_source(module: Any) -> str:
    """The CUDA C source of the kernels in a built module (``tvm.compile(...).mod``)."""
    pending = [module]
    while pending:
        current = pending.pop()
        if str(current.kind) == "cuda":
            return str(current.inspect_source())
        pending.extend(current.imports)
    raise ValueError("the module holds no CUDA code")
