"""Real models end to end: file size and onnxruntime latency of the compressed model relative to
the pruned dense one, measured in the same run, with the memory each session takes.

For each model: magnitude-prune its MatMul / Gemm / Conv weights to the sparsity, compress with
``codec="auto"`` (folding BatchNorm, per-channel Mul/Add, biases and layout Transposes first),
check that both give the same outputs (max |lsc - dense| / (1 + |dense|)), record the resident
memory each session takes (in a fresh process), and time both in onnxruntime (its default
optimization level) at the shapes below. ``resnet50`` is built from onnx's own ``light_resnet50.onnx`` graph
with seeded random weights; ``resnet50-tf`` is the same network as a TensorFlow exporter writes
it (NHWC Transposes around every Conv, BatchNorm as Sub/Mul/Add), see ``benchmarks/resnet50.py``.

    python -m benchmarks.bench_models                       # MiniLM-L3 at 90%, 1 and 2 threads
    python -m benchmarks.bench_models --model resnet50 --threads 1
    python -m benchmarks.bench_models --models minilm resnet50 resnet50-tf --sparsity 0.9
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import lsc_ort
from benchmarks.bench_matmul import CLOCKS, seconds_per_run, set_clock
from lsc_ort.model_wheels import MODELS, model_path
from lsc_ort.pruning import prune_file
from lsc_ort.report import totals
from lsc_ort.rewriter import compress_file
from lsc_ort.verify import random_inputs

SHAPES = {  # input shapes at batch 1
    "minilm": [{"input_ids": [1, 16], "attention_mask": [1, 16]},
               {"input_ids": [1, 128], "attention_mask": [1, 128]}],
    "magika": [{}],
    "rapidocr-cls": [{"x": [1, 3, 48, 192]}],
    "resnet50": [{}],
    "resnet50-tf": [{}],
}
BUILT = {
    "resnet50": "ResNet-50 (onnx's light_resnet50 graph, seeded random weights)",
    "resnet50-tf": "ResNet-50 as TensorFlow exports it (NHWC Transposes, BatchNorm as Sub/Mul/Add)",
}


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux; 0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = lsc_ort.session_options()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


_RSS_PROBE = """
import json, sys, numpy as np, onnxruntime as ort, lsc_ort
from benchmarks.bench_models import rss_mib
feeds = dict(np.load(sys.argv[2]))
base = rss_mib()
options = lsc_ort.session_options()
options.intra_op_num_threads = 1
options.log_severity_level = 3
sess = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
created = rss_mib()
sess.run(None, feeds)
print(json.dumps([base, created, rss_mib()]))
"""


def session_rss(path: Path, feeds: dict[str, np.ndarray], workdir: Path) -> tuple[float, float]:
    """Resident memory (MiB) a session on ``path`` adds after creation and after its first run,
    measured in a fresh process (so that no other session's memory is counted)."""
    inputs = workdir / "rss-feeds.npz"
    np.savez(inputs, **feeds)
    done = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(path), str(inputs)], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    base, created, after_run = json.loads(done.stdout.strip().splitlines()[-1])
    return created - base, after_run - base


def source_model(key: str, workdir: Path) -> Path:
    if key not in BUILT:
        return model_path(key)
    from benchmarks.resnet50 import resnet50, tensorflow_style

    path = workdir / f"{key}.onnx"
    model = resnet50(seed=0)
    onnx.save(tensorflow_style(model) if key == "resnet50-tf" else model, str(path))
    return path


def max_relative_difference(expected: list[np.ndarray], actual: list[np.ndarray]) -> float:
    """max |a - e| / (1 + |e|) over all outputs (the verify command's measure)."""
    worst = 0.0
    for e, a in zip(expected, actual, strict=True):
        e64, a64 = e.astype(np.float64), a.astype(np.float64)
        worst = max(worst, float(np.max(np.abs(a64 - e64) / (1.0 + np.abs(e64)))) if e.size else 0.0)
    return worst


def ops(path: Path) -> Counter[str]:
    return Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", "--model", nargs="+", default=["minilm"], choices=sorted([*MODELS, *BUILT]))
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.9])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timing per measurement")
    parser.add_argument("--no-fold", dest="fold", action="store_false", help="compress without folding")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or CPU time (1 thread; robust on a busy shared host)")
    args = parser.parse_args()
    set_clock(args.clock)
    print(f"onnxruntime {ort.__version__}, lsc-ort {lsc_ort.__version__} ({lsc_ort.native.kernel_name()})")
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            source = source_model(key, Path(tmp))
            for sparsity in args.sparsity:
                pruned, compressed = Path(tmp) / f"{key}-pruned.onnx", Path(tmp) / f"{key}-lsc.onnx"
                prune_file(source, pruned, sparsity)
                result = compress_file(pruned, compressed, fold=args.fold)
                weights = totals(result.layers)
                file_ratio = pruned.stat().st_size / compressed.stat().st_size
                description = BUILT.get(key) or MODELS[key].description
                print(f"{key} ({description}) pruned to {sparsity:.0%}:")
                print(f"  file: {pruned.stat().st_size:,} B -> {compressed.stat().st_size:,} B "
                      f"({file_ratio:.2f}x smaller)")
                print(f"  encoded weights: {weights.dense_bytes:,} B -> {weights.encoded_bytes:,} B "
                      f"({weights.ratio:.2f}x; entropy bound {weights.entropy_bound_bytes:,.0f} B) in "
                      f"{weights.encoded_layers} of {weights.layers} layers")
                if result.folded is not None:
                    print(f"  before encoding: {result.folded.summary()}")
                left = ops(compressed)
                print("  compressed graph: " + ", ".join(f"{count} {op}" for op, count in left.most_common()))
                model = onnx.load(str(pruned), load_external_data=False)
                for shapes in SHAPES[key]:
                    feeds = random_inputs(model, shapes=shapes)
                    described = ", ".join(f"{name} {list(v.shape)}" for name, v in feeds.items())
                    for name, path in (("dense", pruned), ("lsc", compressed)):
                        created, after_run = session_rss(path, feeds, Path(tmp))
                        print(f"  RSS of a {name} session ({described}): +{created:.0f} MiB after creation, "
                              f"+{after_run:.0f} MiB after the first run")
                    for threads in args.threads:
                        dense_session, lsc_session = session(pruned, threads), session(compressed, threads)
                        difference = max_relative_difference(dense_session.run(None, feeds),
                                                             lsc_session.run(None, feeds))
                        dense = seconds_per_run(dense_session, feeds, args.budget)
                        lsc = seconds_per_run(lsc_session, feeds, args.budget)
                        print(f"  latency, {described}, {threads} thread(s): dense {dense * 1e3:.2f} ms, "
                              f"lsc {lsc * 1e3:.2f} ms, lsc/dense {lsc / dense:.3f} ({dense / lsc:.2f}x faster); "
                              f"max rel diff {difference:.1e}", flush=True)
                        del dense_session, lsc_session
                        gc.collect()


if __name__ == "__main__":
    main()
