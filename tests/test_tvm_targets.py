"""The LSC kernels for aarch64 (NEON in the assembly; numbers under qemu-aarch64 where the cross
toolchain and qemu-user are installed) and CUDA (PTX built with nvcc, no GPU needed; GPU runs
where TVM has a CUDA device); ``lsc-ort tvm-compile``."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lsc_ort
from lsc_ort.cli import main
from tests.conftest import sparse_array
from tests.op_models import assert_close, conv_model, matmul_model, reference_conv
from tests.test_tvm import reference, with_input_shape
from tests.tvm_helpers import compiled, tvm, tvm_schedules

from tvm_schedules import _tvm  # isort: skip
from tvm_schedules.kernels import ConvKernel, MatMulKernel  # isort: skip
from tvm_schedules.layouts import column_layout  # isort: skip
from tvm_schedules.schedules import cpu, schedule_function  # isort: skip

CROSS_CC = "aarch64-linux-gnu-gcc"
CROSS_CXX = "aarch64-linux-gnu-g++"
QEMU = "qemu-aarch64"
HARNESS = Path(__file__).with_name("tvm_kernel_harness.c")

needs_cross = pytest.mark.skipif(shutil.which(CROSS_CXX) is None, reason=f"{CROSS_CXX} is not installed")
needs_qemu = pytest.mark.skipif(
    shutil.which(CROSS_CC) is None or shutil.which(QEMU) is None or not Path("/usr/aarch64-linux-gnu").is_dir(),
    reason=f"{CROSS_CC}, {QEMU} (qemu-user) or the aarch64 sysroot is not installed")
needs_nvcc = pytest.mark.skipif(_tvm.find_nvcc() is None, reason="no nvcc (CUDA toolkit or nvidia-cuda-nvcc wheel)")
needs_gpu = pytest.mark.skipif(not tvm.cuda(0).exist, reason="no CUDA device visible to TVM")

MATMUL_SHAPE = (70, 37)
CONV_CASE = ((2, 6, 11, 20), (10, 3, 3, 3), {"group": 2, "strides": [1, 2], "pads": [1, 1, 2, 0]})


def kernel_layout(weight: np.ndarray) -> Any:
    matrix = weight.reshape(weight.shape[0], -1).T if weight.ndim == 4 else weight
    return column_layout(matrix, matrix != 0)


def arm_kernels() -> dict[str, Any]:
    """The aarch64-scheduled LSCMatMul and LSCConv kernels of the test shapes."""
    arm = tvm_schedules.resolve_target("arm")
    _, w_shape, attributes = CONV_CASE
    conv = ConvKernel(channels=6, out_channels=w_shape[0], group=attributes["group"], kernel=(3, 3),
                      strides=tuple(attributes["strides"]), dilations=(1, 1),
                      pads=(attributes["pads"][0], attributes["pads"][1], attributes["pads"][2], attributes["pads"][3]))
    specs = {"lsc_matmul": MatMulKernel(*MATMUL_SHAPE, alpha=0.5), "lsc_conv": conv}
    kernels = {}
    for name, spec in specs.items():
        reference_form = cpu.matmul(spec, cpu.REFERENCE) if name == "lsc_matmul" else cpu.conv(spec, cpu.REFERENCE)
        kernels[name] = schedule_function(reference_form, arm).with_attr("global_symbol", name)
    return kernels


@pytest.fixture(scope="module")
def arm_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path | None]:
    """The aarch64 kernels built by TVM, and exported as a shared library where a cross
    compiler exists."""
    module = tvm.compile(tvm.IRModule(arm_kernels()), target=tvm_schedules.resolve_target("arm"))
    if shutil.which(CROSS_CXX) is None:
        return module, None
    path = tmp_path_factory.mktemp("arm") / "kernels.so"
    module.export_library(str(path), fcompile=_tvm.cross_compiler(CROSS_CXX))
    return module, path


@pytest.mark.parametrize("name", ["lsc_matmul", "lsc_conv"])
def test_arm_kernels_use_neon(name: str) -> None:
    """Each kernel alone, cross-compiled by TVM's LLVM: its multiply-adds are NEON 4 x f32."""
    arm = tvm_schedules.resolve_target("arm")
    module = tvm.compile(tvm.IRModule({name: arm_kernels()[name]}), target=arm).mod
    assert "aarch64" in module.inspect_source("ll")[:4000]
    asm = module.inspect_source("asm")
    fmla = re.findall(r"\bfmla\s+v\d+\.4s", asm)
    loads = re.findall(r"\b(?:ldr\s+q\d+|ld1\s+\{v\d+\.4s|ldp\s+q\d+)", asm)
    assert len(fmla) >= 4, f"{name}: {len(fmla)} NEON fmla"  # a 16-float run: 4 registers
    assert loads, f"{name}: no 128-bit NEON loads"


def pack(arrays: list[np.ndarray]) -> bytes:
    """The harness's argument file: count, then per tensor dtype code, bits, ndim, shape, data."""
    parts = [struct.pack("<I", len(arrays))]
    for array in arrays:
        code = {"i": 0, "u": 1, "f": 2}[array.dtype.kind]
        parts.append(struct.pack("<BBBB", code, array.dtype.itemsize * 8, array.ndim, 0))
        parts.append(struct.pack(f"<{array.ndim}q", *array.shape) + np.ascontiguousarray(array).tobytes())
    return b"".join(parts)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tvm_ffi.libinfo

    out = tmp_path_factory.mktemp("harness") / "harness"
    includes = [tvm_ffi.libinfo.find_include_path(), tvm_ffi.libinfo.find_dlpack_include_path()]
    subprocess.run([CROSS_CC, "-O1", "-o", str(out), str(HARNESS), *(f"-I{i}" for i in includes), "-ldl",
                    "-rdynamic"], check=True, capture_output=True)
    return out


def run_on_qemu(harness: Path, library: Path, name: str, arrays: list[np.ndarray], tmp: Path) -> np.ndarray:
    (tmp / "args.bin").write_bytes(pack(arrays))
    done = subprocess.run([QEMU, "-L", "/usr/aarch64-linux-gnu", str(harness), str(library), name,
                           str(tmp / "args.bin"), str(tmp / "out.bin")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return np.fromfile(tmp / "out.bin", arrays[-1].dtype).reshape(arrays[-1].shape)


@needs_qemu
@needs_cross
def test_arm_kernels_under_qemu(arm_library: tuple[Any, Path | None], harness: Path, tmp_path: Path) -> None:
    _, library = arm_library
    assert library is not None
    rng = np.random.default_rng(4)
    w = sparse_array(MATMUL_SHAPE, 0.8, seed=5)
    layout = kernel_layout(w)
    bias = rng.standard_normal(MATMUL_SHAPE[1]).astype(np.float32)
    for m in (1, 5, 60, 130):  # every loop nest of the kernel
        a = rng.standard_normal((m, MATMUL_SHAPE[0])).astype(np.float32)
        y = run_on_qemu(harness, library, "lsc_matmul",
                        [a, *layout.arrays(), bias, np.zeros((m, MATMUL_SHAPE[1]), np.float32)], tmp_path)
        assert_close(y, reference(a, w, bias, 0.5))
    x_shape, w_shape, attributes = CONV_CASE
    wc = sparse_array(w_shape, 0.6, seed=6)
    x = rng.standard_normal(x_shape).astype(np.float32)
    expected = reference_conv(x, wc, None, **attributes)
    y = run_on_qemu(harness, library, "lsc_conv", [x, *kernel_layout(wc).arrays(), np.zeros(w_shape[0], np.float32),
                                                   np.zeros(expected.shape, np.float32)], tmp_path)
    assert_close(y, expected)


def cuda_models() -> list[tuple[bytes, dict[str, list[Any]]]]:
    w = sparse_array((300, 200), 0.9)  # activation rows staged in shared memory
    wide = sparse_array((13000, 40), 0.99)  # rows too long for shared memory: global loads
    x_shape, w_shape, attributes = CONV_CASE
    wc = sparse_array(w_shape, 0.6, seed=6)
    return [
        (matmul_model(lsc_ort.encode(w, "lsc"), np.ones(200, np.float32), alpha=2.0), {"A": ["M", 300]}),
        (matmul_model(lsc_ort.encode(wide, "lsc")), {"A": ["M", 13000]}),
        (conv_model(lsc_ort.encode(wc, "lsc"), **attributes), {"X": ["N", x_shape[1], "H", "W"]}),
        (conv_model(lsc_ort.encode(sparse_array((8, 512, 3, 3), 0.9), "lsc"), pads=[1, 1, 1, 1]),
         {"X": [1, 512, 12, 12]}),
    ]


@needs_nvcc
def test_cuda_kernels_build_to_ptx() -> None:
    for model, shapes in cuda_models():
        executable = compiled(model, "cuda", shapes)
        ptx = _tvm.compile_cuda_to_ptx(_tvm.cuda_source(executable.module.mod), "sm_80")
        assert ".visible .entry" in ptx and "%tid.x" in ptx and "%ctaid" in ptx
    staged = _tvm.compile_cuda_to_ptx(_tvm.cuda_source(compiled(*cuda_models()[0][:1], "cuda",
                                                               cuda_models()[0][1]).module.mod), "sm_80")
    assert "ld.shared.f32" in staged and "bar.sync" in staged


@needs_gpu
def test_cuda_kernels_on_gpu() -> None:
    rng = np.random.default_rng(7)
    w = sparse_array((300, 200), 0.9)
    model = with_input_shape(matmul_model(lsc_ort.encode(w, "lsc")), "A", ["M", 300])
    executable = compiled(model, "cuda")
    for m in (1, 9, 130):
        a = rng.standard_normal((m, 300)).astype(np.float32)
        assert_close(tvm_schedules.run(executable, {"A": a})[0], reference(a, w))


def test_cli_tvm_compile_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = sparse_array((40, 30), 0.8)
    model = with_input_shape(matmul_model(lsc_ort.encode(w, "lsc")), "A", ["M", 40])
    source = tmp_path / "compressed.onnx"
    source.write_bytes(model)
    assert main(["tvm-compile", str(source), "--target", "cpu", "-o", str(tmp_path / "model.so")]) == 0
    assert "model.so" in capsys.readouterr().out
    vm = tvm.relax.VirtualMachine(tvm.runtime.load_module(str(tmp_path / "model.so")), tvm.cpu())
    a = np.random.default_rng(0).standard_normal((2, 40)).astype(np.float32)
    assert_close(vm["main"](tvm.runtime.tensor(a)).numpy(), reference(a, w))


def test_cli_tvm_compile_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "bad.onnx"
    source.write_bytes(matmul_model(lsc_ort.encode(sparse_array((40, 30), 0.8), "lsc"), transB=3))
    assert main(["tvm-compile", str(source), "-o", str(tmp_path / "x.so"), "--shape", "A=2,40"]) == 2
    assert "[LSCMatMul] node 'lsc_mm': attribute transB must be 0 or 1" in capsys.readouterr().err
    assert main(["tvm-compile", str(source), "-o", str(tmp_path / "x.so"), "--target", "tpu"]) == 2
    assert "unknown target 'tpu'" in capsys.readouterr().err
    assert not (tmp_path / "x.so").exists()


@needs_cross
def test_cli_tvm_compile_arm(tmp_path: Path) -> None:
    w = sparse_array((40, 30), 0.8)
    source = tmp_path / "compressed.onnx"
    source.write_bytes(with_input_shape(matmul_model(lsc_ort.encode(w, "lsc")), "A", ["M", 40]))
    assert main(["tvm-compile", str(source), "--target", "arm", "-o", str(tmp_path / "model.so")]) == 0
    header = (tmp_path / "model.so").read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and struct.unpack_from("<H", header, 18)[0] == 183  # EM_AARCH64


def test_cli_help_lists_tvm_compile(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["tvm-compile", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--target cpu|cuda|arm|TARGET" in text and "lsc-ort tvm-compile compressed.onnx --target arm" in text
    assert max(len(line) for line in text.splitlines()) <= 80
