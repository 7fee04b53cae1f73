"""TVM is optional: ``import lsc_ort`` (and its command line, until ``tvm-compile`` runs) never
imports it, and ``tvm_schedules`` says how to install it when it is missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_import_lsc_ort_never_imports_tvm() -> None:
    done = python("""
        import sys
        import lsc_ort, lsc_ort.cli, lsc_ort.reference, lsc_ort.rewriter
        lsc_ort.cli.build_parser().parse_args(["tvm-compile", "m.onnx", "-o", "m.so"])
        lsc_ort.cli.main(["--help"])
        loaded = sorted(m for m in sys.modules if m == "tvm" or m.startswith(("tvm.", "tvm_ffi", "tvm_schedules")))
        print("LOADED", loaded)
    """)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout


def test_missing_tvm_gives_install_hint() -> None:
    done = python("""
        import sys
        sys.modules["tvm"] = None  # as if apache-tvm were not installed
        try:
            import tvm_schedules
        except ImportError as error:
            print("ERROR", type(error).__name__, error)
    """)
    assert "ERROR TvmUnavailableError" in done.stdout, done.stdout + done.stderr
    assert "pip install 'lsc-ort[tvm]'" in done.stdout
