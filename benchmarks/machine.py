"""What the benchmark ran on: CPU, flags, cores, threads, versions, and how busy the machine was."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

FLAGS_OF_INTEREST = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                     "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")
PACKAGES = ("numpy", "onnx", "onnxruntime", "lsc-ort", "scipy", "torch", "openvino", "apache-tvm", "matplotlib")


def cpu_info() -> dict[str, Any]:
    """Model name, the SIMD flags that matter to the kernels, and core counts."""
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {"model": model, "machine": platform.machine(), "logical_cpus": os.cpu_count() or 1,
            "usable_cpus": usable, "flags": [f for f in FLAGS_OF_INTEREST if f in flags]}


def memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def last_level_cache_bytes() -> int | None:
    """Size of CPU 0's largest cache (Linux sysfs), or None where it cannot be read."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (entry / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=None)


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def versions() -> dict[str, str]:
    """Versions of Python and of the packages the benchmark uses (absent ones are left out)."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def git_revision() -> str:
    """``<short commit>[+dirty]`` of the checkout, or ``unknown``."""
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def kernel_variant() -> str:
    """The LSC kernel variant the native library picked (``LSC_ORT_ISA`` caps it)."""
    try:
        from lsc_ort.native import kernel_name

        return kernel_name()
    except Exception as error:  # the library is not built: say so rather than fail
        return f"unavailable ({type(error).__name__})"


def machine_info(threads: tuple[int, ...]) -> dict[str, Any]:
    """Everything :func:`header` prints, as a dict (stored with the results)."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu_info(),
        "memory_bytes": memory_bytes(),
        "threads": list(threads),
        "load_at_start": load_average(),
        "versions": versions(),
        "revision": git_revision(),
        "kernel": kernel_variant(),
        "env": {k: v for k, v in os.environ.items() if k in ("LSC_ORT_ISA", "LSC_ORT_LIBRARY", "OMP_NUM_THREADS")},
    }


def contention(load: tuple[float, float, float] | None, cpus: int) -> str:
    """A one-line verdict on how busy the machine was, from the 1-minute load average."""
    if load is None:
        return "load average unknown"
    one = load[0]
    if one >= 0.75 * cpus:
        verdict = "CONTENDED: other work was running, timings are development numbers"
    elif one >= 0.25 * cpus:
        verdict = "partly busy: timings are noisy"
    else:
        verdict = "quiet"
    return f"load average {one:.2f} on {cpus} CPUs ({verdict})"


def header(info: dict[str, Any], *, mode: str, command: str) -> str:
    """Markdown lines naming the machine, threads, versions and contention; at the top of every file."""
    cpu = info["cpu"]
    memory = info.get("memory_bytes")
    mem = f", {memory / 2**30:.0f} GiB RAM" if memory else ""
    packages = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    env = ", ".join(f"{k}={v}" for k, v in info.get("env", {}).items())
    lines = [
        f"- **run**: {info['date']}, `{command}` ({mode}), lsc-ort revision {info['revision']}",
        f"- **machine**: {cpu['model']} ({cpu['machine']}), {cpu['usable_cpus']} of {cpu['logical_cpus']} CPUs "
        f"usable{mem}, {info['os']}",
        f"- **CPU flags**: {' '.join(cpu['flags']) or 'none of interest'}; LSC kernel: `{info['kernel']}`",
        f"- **threads** measured: {', '.join(map(str, info['threads']))} (intra-op; inter-op 1)"
        + (f"; environment: {env}" if env else ""),
        f"- **versions**: {packages}",
        f"- **contention** at start: {contention(info.get('load_at_start'), cpu['usable_cpus'])}",
    ]
    return "\n".join(lines) + "\n"


def section_context(before: tuple[float, float, float] | None, cpus: int) -> dict[str, Any]:
    after = load_average()
    return {"load": f"before: {contention(before, cpus)}; after: {contention(after, cpus)}"}


if __name__ == "__main__":  # pragma: no cover - manual check
    info = machine_info((1, 2))
    sys.stdout.write(header(info, mode="info", command="python -m benchmarks.machine"))
