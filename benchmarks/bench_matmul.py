"""LSCMatMul vs onnxruntime's dense MatMul on pruned weights (issue 3's speed targets).

Prints, for each layer, sparsity, batch and thread count, the time of LSCMatMul on the `lsc`
blob divided by the time of onnxruntime's MatMul on the same (pruned, dense) weight, both
measured in this run. Targets at 90% sparsity, 1 thread (issue 10): >= 5x at 128 rows and >= 3x
at 1 row on the 3072x768 and 768x3072 layers; on the 8192x8192 layer at 1 row, encoded bytes per
second >= 60% of the measured read bandwidth.

    python benchmarks/bench_matmul.py                # the full table
    python benchmarks/bench_matmul.py --quick        # 90% sparsity only
    python benchmarks/bench_matmul.py --clock cpu    # CPU time (1-thread rows) on a busy host

For the 8192x8192 layer at batch 1 it also prints the encoded bytes streamed per second as a
fraction of a plain streaming read of as many bytes, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import lsc_ort


def matmul_model(weight: np.ndarray) -> bytes:
    k, n = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "W"], ["Y"])], "dense",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        [numpy_helper.from_array(weight, "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def lsc_model(blob: bytes, k: int, n: int) -> bytes:
    graph = helper.make_graph(
        [helper.make_node("LSCMatMul", ["A", "W"], ["Y"], domain=lsc_ort.DOMAIN)], "lsc",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        [numpy_helper.from_array(np.frombuffer(blob, np.uint8), "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid(lsc_ort.DOMAIN, 1)]).SerializeToString()


def session(model: bytes, threads: int, custom: bool) -> ort.InferenceSession:
    options = lsc_ort.session_options() if custom else ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""``wall``: elapsed time; ``cpu``: this process's CPU time, which time slices that other
processes take on a shared host do not count (1 thread only: with more it sums the threads)."""
clock = time.perf_counter


def set_clock(name: str) -> None:
    global clock
    clock = CLOCKS[name]


def seconds_per_run(sess: ort.InferenceSession, feed: dict[str, np.ndarray], budget: float) -> float:
    """Median over 5 rounds of the mean time of back-to-back runs (about `budget` s in total)."""
    sess.run(None, feed)
    start, runs = clock(), 0
    while clock() - start < budget / 10 or runs < 3:
        sess.run(None, feed)
        runs += 1
    per_round = max(1, runs * 2)
    rounds = []
    for _ in range(5):
        start = clock()
        for _ in range(per_round):
            sess.run(None, feed)
        rounds.append((clock() - start) / per_round)
    return statistics.median(rounds)


def read_bandwidth(nbytes: int) -> float:
    """Bytes per second of a plain streaming read of an ``nbytes`` buffer, the best of a few
    numpy reductions (one thread, the benchmark's clock), in the cache regime of a weight of
    that size read over and over."""
    data = np.ones(max(1, nbytes // 8), np.uint64)
    best = float("inf")
    for reduce in (lambda: np.bitwise_or.reduce(data), lambda: np.maximum.reduce(data.view(np.float32)),
                   lambda: data.sum()):
        reduce()
        for _ in range(5):
            start = clock()
            reduce()
            best = min(best, clock() - start)
    return data.nbytes / best


def pruned(k: int, n: int, sparsity: float, rng: np.random.Generator) -> np.ndarray:
    weight = rng.standard_normal((k, n)).astype(np.float32)
    weight.reshape(-1)[rng.choice(weight.size, round(sparsity * weight.size), replace=False)] = 0.0
    return weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="90%% sparsity only, shorter timings")
    parser.add_argument("--budget", type=float, default=0.4, help="seconds of timing per measurement")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or CPU time (1 thread; robust on a busy shared host)")
    args = parser.parse_args()
    set_clock(args.clock)
    rng = np.random.default_rng(0)
    sparsities = [0.9] if args.quick else [0.5, 0.7, 0.9, 0.95]
    cases = [((k, n), s, m, t) for (k, n) in [(3072, 768), (768, 3072)] for s in sparsities
             for m in (1, 8, 128) for t in (1, 2)]
    cases += [((8192, 8192), 0.9, 1, t) for t in (1, 2)]
    print(f"onnxruntime {ort.__version__}, lsc-ort {lsc_ort.__version__}")
    print(f"{'layer':>11} {'sparsity':>8} {'batch':>5} {'threads':>7} {'dense us':>9} {'lsc us':>9} "
          f"{'lsc/dense':>9} {'speedup':>7}")
    weights: dict[tuple[tuple[int, int], float], tuple[np.ndarray, bytes]] = {}
    for (k, n), sparsity, m, threads in cases:
        if ((k, n), sparsity) not in weights:
            weight = pruned(k, n, sparsity, rng)
            weights.clear()
            weights[(k, n), sparsity] = (weight, lsc_ort.encode(weight, "lsc"))
        weight, blob = weights[(k, n), sparsity]
        feed = {"A": rng.standard_normal((m, k)).astype(np.float32)}
        dense = session(matmul_model(weight), threads, custom=False)
        lsc = session(lsc_model(blob, k, n), threads, custom=True)
        budget = args.budget / (2 if args.quick else 1)
        t_dense, t_lsc = seconds_per_run(dense, feed, budget), seconds_per_run(lsc, feed, budget)
        print(f"{k:>5}x{n:<5} {sparsity:>8.0%} {m:>5} {threads:>7} {t_dense * 1e6:>9.1f} {t_lsc * 1e6:>9.1f} "
              f"{t_lsc / t_dense:>9.3f} {t_dense / t_lsc:>6.2f}x", flush=True)
        if (k, n) == (8192, 8192) and m == 1 and threads == 1:
            # The read bandwidth and the kernel, measured in turns (the host's caches and memory
            # are shared with others): encoded bytes per second / bandwidth, per pair.
            pairs = []
            for _ in range(3):
                bandwidth = read_bandwidth(len(blob))
                t = seconds_per_run(lsc, feed, budget / 3)
                pairs.append((len(blob) / t / bandwidth, t, bandwidth))
            ratios = sorted(p[0] for p in pairs)
            _, t, bandwidth = sorted(pairs)[1]
            print(f"    8192x8192 batch 1: encoded {len(blob):,} B / {t * 1e3:.2f} ms = {len(blob) / t / 1e9:.1f} GB/s "
                  f"= {ratios[1]:.0%} (range {ratios[0]:.0%}-{ratios[-1]:.0%}) of a {bandwidth / 1e9:.1f} GB/s read "
                  f"of as many bytes; {len(blob) / t / read_bandwidth(1 << 30):.0%} of a 1 GiB read", flush=True)


if __name__ == "__main__":
    main()
