"""Real models end to end: file size and onnxruntime latency of the compressed model relative to
the pruned dense one (issue 4's report), measured in the same run.

For each model: magnitude-prune its MatMul / Gemm / Conv weights to the sparsity, compress with
``codec="auto"``, and time both in onnxruntime at batch 1 (the sequence or image sizes below).

    python -m benchmarks.bench_models                       # MiniLM-L3 at 90%, 1 and 2 threads
    python -m benchmarks.bench_models --models minilm magika --sparsity 0.9 0.95
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort

import lsc_ort
from benchmarks.bench_matmul import seconds_per_run
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
}


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = lsc_ort.session_options()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["minilm"], choices=sorted(MODELS))
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.9])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timing per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            source = model_path(key)
            for sparsity in args.sparsity:
                pruned, compressed = Path(tmp) / f"{key}-pruned.onnx", Path(tmp) / f"{key}-lsc.onnx"
                prune_file(source, pruned, sparsity)
                result = compress_file(pruned, compressed)
                weights = totals(result.layers)
                file_ratio = pruned.stat().st_size / compressed.stat().st_size
                print(f"{key} ({MODELS[key].description}) pruned to {sparsity:.0%}:")
                print(f"  file: {pruned.stat().st_size:,} B -> {compressed.stat().st_size:,} B "
                      f"({file_ratio:.2f}x smaller)")
                print(f"  encoded weights: {weights.dense_bytes:,} B -> {weights.encoded_bytes:,} B "
                      f"({weights.ratio:.2f}x; entropy bound {weights.entropy_bound_bytes:,.0f} B) in "
                      f"{weights.encoded_layers} of {weights.layers} layers")
                model = onnx.load(str(pruned), load_external_data=False)
                for shapes in SHAPES[key]:
                    feeds = random_inputs(model, shapes=shapes)
                    described = ", ".join(f"{name} {list(v.shape)}" for name, v in feeds.items())
                    for threads in args.threads:
                        dense = seconds_per_run(session(pruned, threads), feeds, args.budget)
                        lsc = seconds_per_run(session(compressed, threads), feeds, args.budget)
                        print(f"  latency, {described}, {threads} thread(s): dense {dense * 1e3:.2f} ms, "
                              f"lsc {lsc * 1e3:.2f} ms, lsc/dense {lsc / dense:.3f} ({dense / lsc:.2f}x faster)",
                              flush=True)


if __name__ == "__main__":
    main()
