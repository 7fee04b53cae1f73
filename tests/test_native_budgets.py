"""Memory the native ops take: checked against a budget before it is taken, and given back.

* Scratch for a large batch or image is released when the run ends (a 100,000-row batch used to
  leave 3.25 GB resident): resident memory after a run returns to what it was before.
* Column lists, outputs and scratch are checked against the memory budget (half of the machine's
  memory; ``LSC_ORT_MEMORY_BUDGET_MB`` here) and fail naming what needs how much. The column-list
  check counts everything alive at its peak (it used to count half).
* ``lsc_ort.decode`` applies the same budget to the dense tensor it returns.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import lsc_ort
from lsc_ort import native
from tests.hostile import SANITIZED, rss_mib, run_python

pytestmark = pytest.mark.skipif(not native.library_available(), reason="native library not built")


def session_without_arena(model: bytes, threads: int = 1) -> ort.InferenceSession:
    """A session whose outputs go back to the system when freed (no onnxruntime memory arena),
    so resident memory after a run shows what the op kept."""
    options = lsc_ort.session_options()
    options.intra_op_num_threads = threads
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def grown_after_run(sess: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> float:
    """MiB of resident memory a run leaves behind (after a warm-up run on a small input)."""
    sess.run(None, {name: value[:1] for name, value in feeds.items()})
    before = rss_mib()
    outputs = sess.run(None, feeds)
    del outputs
    return rss_mib() - before


@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer's quarantine keeps freed memory resident")
def test_large_runs_leave_no_scratch_behind() -> None:
    """A 50,000-row batch (A and Y transposed: 51 and 102 MB of scratch) and a batch of 80 images
    (padded input planes: 22 MB), in float32 and float16 (float32 copies of the input and output
    too). Buffers up to 16 MiB are kept for the next run. Measured in a fresh process whose
    allocator returns large blocks to the system at once."""
    code = """
import numpy as np, lsc_ort
from tests.conftest import sparse_array
from tests.op_models import conv_model, matmul_model
from tests.test_native_budgets import grown_after_run, session_without_arena
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float16):
    w = lsc_ort.encode(sparse_array((256, 512), 0.95), "lsc")
    sess = session_without_arena(matmul_model(w, dtype=dtype), threads=2)
    print(grown_after_run(sess, {"A": rng.standard_normal((50_000, 256)).astype(dtype)}))
    w = lsc_ort.encode(sparse_array((16, 16, 3, 3), 0.9), "lsc")
    sess = session_without_arena(conv_model(w, dtype=dtype, pads=[1, 1, 1, 1]), threads=2)
    print(grown_after_run(sess, {"X": rng.standard_normal((80, 16, 64, 64)).astype(dtype)}))
"""
    grown = [float(v) for v in run_python(code, timeout=300, MALLOC_MMAP_THRESHOLD_="131072").split()]
    assert len(grown) == 4 and max(grown) < 4, f"MiB left resident: {grown}"


def test_every_allocation_is_checked_against_the_budget() -> None:
    """With a budget of 1 MiB: column lists, outputs, scratch and decoded tensors that need more
    fail with a message naming what and how much."""
    code = r"""
import numpy as np, lsc_ort
from tests.conftest import sparse_array
from tests.hostile import ERRORS, lsc_whole_matrix_blob
from tests.op_models import conv_model, matmul_model, session

def failure(fn):
    try:
        fn()
    except (ValueError, *ERRORS) as error:
        return str(error).split("Status Message: ")[-1].split("Exception during initialization: ")[-1]
    return "no error"

# 90,000 non-zeros: 720 KB of rows and values, and 1.6 MB of decoded entries alive with them.
dense = lsc_ort.encode(sparse_array((300, 300), 0.0), "lsc")
print(failure(lambda: session(matmul_model(dense))))
small = lsc_ort.encode(sparse_array((64, 512), 0.9), "lsc")
print(failure(lambda: session(matmul_model(small)).run(None, {"A": np.ones((1024, 64), np.float32)})))
# 4,900 columns of partial sums for a tile of 64 rows: 1.2 MiB of scratch for a 0.9 MiB output
wide = lsc_ort.encode(sparse_array((64, 4900), 0.9), "lsc")
print(failure(lambda: session(matmul_model(wide)).run(None, {"A": np.ones((49, 64), np.float32)})))
conv = lsc_ort.encode(sparse_array((8, 8, 3, 3), 0.9), "lsc")
x = np.ones((1, 8, 200, 200), np.float32)
print(failure(lambda: session(conv_model(conv, pads=[1, 1, 1, 1])).run(None, {"X": x})))
print(failure(lambda: lsc_ort.decode(lsc_whole_matrix_blob(1024, 1024))))
print(failure(lambda: session(matmul_model(small)).run(None, {"A": np.ones((3, 64), np.float32)})))
"""
    lines = run_python(code, timeout=300, LSC_ORT_MEMORY_BUDGET_MB="1").strip().split("\n")
    # 720 KB by the old count (index, rows and values), 2.3 MB with the decoded entries alive
    assert lines[0].startswith("[LSCMatMul] node 'lsc_mm': invalid weight blob: the column lists of this weight "
                               "would need 3 MiB, more than the memory budget of 1 MiB"), lines[0]
    assert lines[1].startswith("[LSCMatMul] node 'lsc_mm': the output Y would need 2 MiB, more than"), lines[1]
    assert lines[2].startswith("[LSCMatMul] node 'lsc_mm': a scratch buffer of 2 MiB exceeds the memory budget of "
                               "1 MiB"), lines[2]
    assert lines[3].startswith("[LSCConv] node 'lsc_conv': the output Y would need 2 MiB, more than"), lines[3]
    assert lines[4].startswith("lsc: decoding shape [1024, 1024] needs 4 MiB, more than the memory budget of 1 MiB"), \
        lines[4]
    assert lines[5] == "no error", lines[5]
