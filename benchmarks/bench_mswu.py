"""LSCMatMul on MSWU weights (unified + pruned blocks) vs onnxruntime's dense MatMul.

For each layer, structure, batch and thread count it prints the time of LSCMatMul on the
`mswu` blob, and on an `lsc` blob of the same weight (the unified blocks stored as plain
non-zeros), each divided by the time of onnxruntime's dense MatMul on the same weight, all
measured in this run. The weight is [K, N] with kx1 blocks along K (a PyTorch Linear's 1xk
blocks), or [N, K] with 1xk blocks under transB=1. Structures: block, pruned + unified fractions
of the blocks (the rest are free).

    python benchmarks/bench_mswu.py            # the full table
    python benchmarks/bench_mswu.py --quick    # fewer cases, shorter timings
"""

from __future__ import annotations

import argparse

import numpy as np
import onnxruntime as ort

import lsc_ort
from benchmarks.bench_matmul import matmul_model, seconds_per_run, session
from lsc_ort.mswu import project


def gemm_model(blob: bytes, k: int, n: int, trans_b: int) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("LSCMatMul", ["A", "W"], ["Y"], domain=lsc_ort.DOMAIN, transB=trans_b)], "lsc",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        [numpy_helper.from_array(np.frombuffer(blob, np.uint8), "W")])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(lsc_ort.DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer cases, shorter timings")
    parser.add_argument("--budget", type=float, default=0.4, help="seconds of timing per measurement")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    structures = [(4, 0.6, 0.3), (4, 0.75, 0.2), (8, 0.7, 0.27)] if not args.quick else [(4, 0.6, 0.3)]
    layers = [(768, 3072, 0), (3072, 768, 1)]
    batches = (1, 8, 128)
    threads_list = (1,) if args.quick else (1, 2)
    budget = args.budget / (2 if args.quick else 1)
    print(f"onnxruntime {ort.__version__}, lsc-ort {lsc_ort.__version__}")
    print(f"{'layer':>10} {'structure':>12} {'batch':>5} {'thr':>3} {'dense us':>9} {'mswu us':>9} "
          f"{'mswu/dense':>10} {'lsc/dense':>9}")
    for k, n, trans_b in layers:
        for length, sparsity, unify in structures:
            stored_shape, block = ((n, k), (1, length)) if trans_b else ((k, n), (length, 1))
            weight = project(rng.standard_normal(stored_shape).astype(np.float32), block, sparsity, unify).weight
            dense_weight = weight.T.copy() if trans_b else weight
            mswu_blob = lsc_ort.encode(weight, "mswu", block=block)
            lsc_blob = lsc_ort.encode(weight, "lsc")
            for m in batches:
                for threads in threads_list:
                    feed = {"A": rng.standard_normal((m, k)).astype(np.float32)}
                    dense = session(matmul_model(dense_weight), threads, custom=False)
                    mswu = session(gemm_model(mswu_blob, k, n, trans_b), threads, custom=True)
                    lsc = session(gemm_model(lsc_blob, k, n, trans_b), threads, custom=True)
                    t_dense = seconds_per_run(dense, feed, budget)
                    t_mswu = seconds_per_run(mswu, feed, budget)
                    t_lsc = seconds_per_run(lsc, feed, budget)
                    name = f"{k}x{n}{'ᵀ' if trans_b else ''}"
                    structure = f"1x{length} {sparsity:.2f}+{unify:.2f}"
                    print(f"{name:>10} {structure:>12} {m:>5} {threads:>3} {t_dense * 1e6:>9.1f} "
                          f"{t_mswu * 1e6:>9.1f} {t_mswu / t_dense:>10.3f} {t_lsc / t_dense:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
