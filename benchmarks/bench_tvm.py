"""LSCMatMul compiled by TVM vs TVM's dense matmul, and vs LSCMatMul in onnxruntime (issue 9).

For 90%-sparse BERT / MiniLM layer shapes at batch 1 and 128 it measures, in one run and
interleaved round by round:

* ``lsc tvm``: the one-node LSCMatMul model through ``tvm_schedules.compile`` (target ``cpu``);
* ``dense tvm``: the same pruned weight as a dense constant, the better of TVM's default
  pipeline (``tvm.compile`` of ``relax.op.matmul``; unscheduled loops) and a hand-scheduled
  GEMM / GEMV after TVM's CPU GEMM tutorial (tiled, register-blocked, vectorised, parallel);
  the best of a few tile shapes is kept; both run through the Relax VM, as the LSC model does;
* ``lsc ort``: the same blob in onnxruntime's LSCMatMul (the native library), same threads.

It prints ``dense tvm / lsc tvm`` (the speed-up, goal >= 3x) and ``lsc tvm / lsc ort``.

    python benchmarks/bench_tvm.py                 # 1 thread
    python benchmarks/bench_tvm.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SHAPES = [(768, 3072), (3072, 768), (768, 768)]
BATCHES = [1, 128]
SPARSITY = 0.9
DENSE_TILES = {1: [(1, 64, 4), (1, 128, 4), (1, 256, 8)], 128: [(4, 64, 4), (8, 32, 4), (4, 32, 4), (2, 128, 4)]}


def dense_tiles(m: int, k: int, n: int) -> list[tuple[int, int, int]]:
    """The DENSE_TILES (rows, columns, k unroll) for ``m`` rows that divide an m x k x n product."""
    return [tile for tile in DENSE_TILES.get(m, []) if m % tile[0] == 0 and n % tile[1] == 0 and k % tile[2] == 0]
"""(row tile, column tile, k unroll) candidates of the scheduled dense GEMM."""


def _timer(call: Callable[[], object], budget: float) -> Callable[[], float]:
    """A function measuring the mean seconds of back-to-back calls, about ``budget`` s each."""
    call()
    start, runs = time.perf_counter(), 0
    while time.perf_counter() - start < budget / 4 or runs < 2:
        call()
        runs += 1
    per_round = max(1, round(runs * 4 * budget / max(time.perf_counter() - start, 1e-9) / 4))

    def measure() -> float:
        start = time.perf_counter()
        for _ in range(per_round):
            call()
        return (time.perf_counter() - start) / per_round

    return measure


def interleaved(timers: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median over ``rounds`` of each timer, the timers taking turns within each round."""
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, measure in timers.items():
            samples[name].append(measure())
    return {name: statistics.median(values) for name, values in samples.items()}


def scheduled_dense(tvm: object, weight: np.ndarray, m: int,
                    tile: tuple[int, int, int]) -> Callable[[object], object]:
    """TVM's CPU GEMM recipe: B packed [N/nt, K, nt], C tiled mt x nt in registers, k unrolled."""
    from tvm import s_tir, te

    k, n = weight.shape
    mt, nt, ku = tile
    a = te.placeholder((m, k), name="A")
    packed = te.placeholder((n // nt, k, nt), name="B")
    r = te.reduce_axis((0, k), name="k")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, r] * packed[j // nt, r, j % nt], axis=r), name="C")
    sch = s_tir.Schedule(te.create_prim_func([a, packed, c]))
    block = sch.get_sblock("C")
    i, j, kk = sch.get_loops(block)
    io, ii = sch.split(i, [None, mt])
    jo, ji = sch.split(j, [None, nt])
    ko, ki = sch.split(kk, [None, ku])
    sch.reorder(jo, io, ko, ki, ii, ji)
    cached = sch.cache_write(block, 0, "global")
    sch.reverse_compute_at(cached, io)
    sch.parallel(sch.fuse(jo, io))
    sch.vectorize(sch.get_loops(cached)[-1])
    sch.vectorize(ji)
    sch.unroll(ii)
    sch.unroll(ki)
    sch.decompose_reduction(block, ko)
    sch.vectorize(sch.get_loops(sch.get_sblock("C_init"))[-1])
    return _vm_of(tvm, sch.mod["main"], m, k, n,
                  [weight.reshape(k, n // nt, nt).transpose(1, 0, 2).copy()])


def _vm_of(tvm: object, func: object, m: int, k: int, n: int,
           constants: list[np.ndarray]) -> Callable[[object], object]:
    """``main(x) = call_tir(func, x, *constants)`` through the Relax VM, as the LSC model runs."""
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((m, k), "float32"))
    with bb.function("main", [x]):
        gvar = bb.add_func(func.with_attrs({"tirx.is_scheduled": True, "global_symbol": "dense"}), "dense")
        with bb.dataflow():
            args = [x, *(relax.const(c) for c in constants)]
            out = bb.emit_output(bb.emit(relax.call_tir(gvar, args, relax.TensorType((m, n), "float32"))))
        bb.emit_func_output(out)
    vm = relax.VirtualMachine(tvm.compile(bb.get(), target=_host_target(tvm)), tvm.cpu())
    main = vm["main"]
    return lambda a: main(a)


def _host_target(tvm: object) -> object:
    from tvm.target import codegen

    return tvm.target.Target({"kind": "llvm", "mcpu": str(codegen.llvm_get_system_cpu())})


def default_dense(tvm: object, weight: np.ndarray, m: int) -> Callable[[object], object]:
    from tvm import relax

    k, _ = weight.shape
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((m, k), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(relax.op.matmul(x, relax.const(weight))))
        bb.emit_func_output(out)
    vm = relax.VirtualMachine(tvm.compile(bb.get(), target=_host_target(tvm)), tvm.cpu())
    return lambda a: vm["main"](a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="TVM and onnxruntime threads (default: 1)")
    parser.add_argument("--budget", type=float, default=0.05, help="seconds per timing sample (default: 0.05)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per case (default: 7)")
    args = parser.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(args.threads)  # before TVM starts its thread pool
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import onnxruntime as ort
    import tvm

    import lsc_ort
    import tvm_schedules
    from benchmarks.bench_matmul import lsc_model, pruned, session

    rng = np.random.default_rng(0)
    native = lsc_ort.native.library_available()
    print(f"apache-tvm {tvm.__version__}, onnxruntime {ort.__version__}, {args.threads} thread(s), "
          f"sparsity {SPARSITY:.0%}; times in us (median of {args.rounds} interleaved rounds)")
    header = (f"{'layer':>10} {'batch':>5} {'dense dflt':>10} {'dense tvm':>9} {'lsc tvm':>8} {'lsc ort':>8} "
              f"{'dense/lsc':>9} {'tvm/ort':>7}")
    print(header)
    speedups, versus_ort = [], []
    for k, n in SHAPES:
        weight = pruned(k, n, SPARSITY, rng)
        blob = lsc_ort.encode(weight, "lsc")
        import onnx

        executable = tvm_schedules.compile(onnx.load_from_string(lsc_model(blob, k, n)), "cpu")
        vm = executable.vm()
        for m in BATCHES:
            a_np = rng.standard_normal((m, k)).astype(np.float32)
            a = tvm.runtime.tensor(a_np, tvm.cpu())
            expected = a_np.astype(np.float64) @ weight
            lsc_out = vm["main"](a).numpy()
            assert np.allclose(lsc_out, expected, rtol=1e-4, atol=1e-3), "lsc tvm is wrong"
            dense_calls = [scheduled_dense(tvm, weight, m, tile) for tile in dense_tiles(m, k, n)]
            timers = {f"dense{i}": _timer(lambda c=c, a=a: c(a), args.budget) for i, c in enumerate(dense_calls)}
            timers["lsc tvm"] = _timer(lambda f=vm["main"], a=a: f(a), args.budget)
            if native:
                sess = session(lsc_model(blob, k, n), args.threads, custom=True)
                feed = {"A": a_np}
                timers["lsc ort"] = _timer(lambda s=sess, f=feed: s.run(None, f), args.budget)
            default = default_dense(tvm, weight, m)
            start = time.perf_counter()
            default(a)
            t_default = time.perf_counter() - start  # one run: unscheduled loops are slow
            times = interleaved(timers, args.rounds)
            t_dense = min(times[f"dense{i}"] for i in range(len(dense_calls)))
            t_dense = min(t_dense, t_default)
            t_lsc, t_ort = times["lsc tvm"], times.get("lsc ort", float("nan"))
            speedups.append(t_dense / t_lsc)
            versus_ort.append(t_lsc / t_ort)
            print(f"{k:>4}x{n:<5} {m:>5} {t_default * 1e6:>10.0f} {t_dense * 1e6:>9.1f} {t_lsc * 1e6:>8.1f} "
                  f"{t_ort * 1e6:>8.1f} {t_dense / t_lsc:>8.2f}x {t_lsc / t_ort:>7.2f}", flush=True)
    print(f"dense tvm / lsc tvm: {min(speedups):.2f}x to {max(speedups):.2f}x (goal >= 3x); "
          f"lsc tvm / lsc ort: {min(versus_ort):.2f} to {max(versus_ort):.2f}")


if __name__ == "__main__":
    main()
