"""Speed tables: every figure is a speed-up over onnxruntime's dense op (or TVM's dense build)
on the same pruned weights, both measured in this run, with the range over timing rounds.

* LSCMatMul on BERT-base / MiniLM layer shapes, beside scipy.sparse and torch.sparse CSR;
* LSCConv on ResNet-50 layer shapes;
* the GEMV bandwidth view: encoded bytes ÷ time against a measured read bandwidth;
* end to end: MiniLM-L3 and ResNet-50 compressed vs pruned dense;
* TVM: LSC ÷ dense, both compiled by ``tvm_schedules`` (skipped when it is not there).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
from onnx import numpy_helper

import lsc_ort
from benchmarks import bench_conv, bench_matmul, machine
from benchmarks.engine_worker import time_interleaved, time_rounds
from benchmarks.report import MISSING, Table, Timing, fmt_bytes, fmt_percent, fmt_seconds, fmt_speedup, speedup

BERT_SHAPES = ((768, 768), (768, 3072), (3072, 768))
MINILM_SHAPES = ((384, 384), (384, 1536), (1536, 384))
RESNET_CONV = ("resnet 3x3 64", "resnet 1x1 256->64", "resnet 3x3 256 s2", "resnet 1x1 512->2048", "stem 7x7 s2")
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
BATCHES = (1, 8, 128)


@dataclass(frozen=True)
class SpeedOptions:
    threads: tuple[int, ...] = (1, 2)
    budget: float = 0.3
    """Seconds of timing per measurement (5 rounds)."""
    matmul_shapes: tuple[tuple[int, int], ...] = MINILM_SHAPES + BERT_SHAPES
    conv_layers: tuple[str, ...] = RESNET_CONV
    sparsities: tuple[float, ...] = SPARSITIES
    batches: tuple[int, ...] = BATCHES
    conv_batches: tuple[int, ...] = BATCHES
    conv_max_input_bytes: int = 128 << 20
    """Conv cases whose input would pass this many bytes are left out (batch 128 on 56×56 maps)."""
    gemv_shapes: tuple[tuple[int, int], ...] = ((8192, 8192), (3072, 768), (768, 3072))
    bandwidth_bytes: int = 1 << 30
    cold_samples: int = 9
    """Single GEMV runs from DRAM (each after the caches are flushed) whose median is reported."""
    e2e_models: tuple[str, ...] = ("minilm", "resnet50")
    e2e_sparsities: tuple[float, ...] = (0.7, 0.9, 0.95)
    tvm_shapes: tuple[tuple[int, int], ...] = BERT_SHAPES + MINILM_SHAPES
    tvm_batches: tuple[int, ...] = (1, 128)
    seed: int = 0


def timing(run: Callable[[], object], budget: float) -> Timing:
    return Timing.from_dict(time_rounds(run, budget))


def _pair_timing(dense: Callable[[], object], lsc: Callable[[], object], threads: int, budget: float,
                 rounds: int = 5) -> tuple[Timing, Timing]:
    """Dense and lsc timings: in alternating rounds at 1 thread, one after the other with more
    (where the other session's spinning thread pool would slow each; see time_interleaved)."""
    if threads == 1:
        first, second = time_interleaved([dense, lsc], budget, rounds)
        return Timing.from_dict(first), Timing.from_dict(second)
    return Timing.from_dict(time_rounds(dense, budget, rounds)), Timing.from_dict(time_rounds(lsc, budget, rounds))


def _ort(model: bytes, threads: int, custom: bool) -> Callable[[dict[str, np.ndarray]], Any]:
    session = bench_matmul.session(model, threads, custom)
    return lambda feed: session.run(None, feed)


class SparsePeers:
    """scipy.sparse and torch.sparse CSR products on the same weight (None where not installed)."""

    def __init__(self) -> None:
        try:
            import scipy.sparse

            self.scipy: Any = scipy.sparse
            import scipy as scipy_module

            self.scipy_version = scipy_module.__version__
        except ImportError:
            self.scipy, self.scipy_version = None, ""
        try:
            import torch

            self.torch: Any = torch
        except ImportError:
            self.torch = None

    def notes(self) -> list[str]:
        notes = []
        notes.append(f"scipy.sparse {self.scipy_version}: csr(Wᵀ) @ Aᵀ, single-threaded (the 2-thread column "
                     "repeats it)" if self.scipy else "scipy.sparse: not installed, skipped (pip install scipy)")
        notes.append(f"torch.sparse {self.torch.__version__}: CSR(Wᵀ) @ Aᵀ with torch.set_num_threads"
                     if self.torch else "torch.sparse: not installed, skipped (pip install torch==2.13.0)")
        return notes

    def scipy_run(self, weight: np.ndarray, activations: np.ndarray) -> Callable[[], object] | None:
        if self.scipy is None:
            return None
        matrix, right = self.scipy.csr_matrix(weight.T), np.ascontiguousarray(activations.T)
        return lambda: matrix @ right

    def torch_run(self, weight: np.ndarray, activations: np.ndarray, threads: int) -> Callable[[], object] | None:
        if self.torch is None:
            return None
        torch = self.torch
        matrix = torch.from_numpy(np.ascontiguousarray(weight.T)).to_sparse_csr()
        right = torch.from_numpy(np.ascontiguousarray(activations.T))

        def run() -> object:
            torch.set_num_threads(threads)
            with torch.inference_mode():
                return matrix @ right

        return run


def matmul_table(options: SpeedOptions, progress: Callable[[str], None] = print) -> Table:
    """LSCMatMul, scipy CSR and torch CSR ÷ onnxruntime dense MatMul, same weights, same run."""
    rng = np.random.default_rng(options.seed)
    peers = SparsePeers()
    table = Table("speed-matmul", "MatMul on pruned BERT-base / MiniLM layer shapes: speed-up over onnxruntime dense",
                  ["K×N", "sparsity", "batch", "threads", "dense", "LSCMatMul", "scipy CSR", "torch CSR"])
    points: list[dict[str, Any]] = []
    for k, n in options.matmul_shapes:
        for sparsity in options.sparsities:
            progress(f"speed: MatMul {k}×{n} at {sparsity:.0%}")
            weight = bench_matmul.pruned(k, n, sparsity, rng)
            blob = lsc_ort.encode(weight, "lsc")
            dense_model, lsc_model = bench_matmul.matmul_model(weight), bench_matmul.lsc_model(blob, k, n)
            for batch in options.batches:
                activations = rng.standard_normal((batch, k)).astype(np.float32)
                feed = {"A": activations}
                scipy_time: Timing | None = None
                for threads in options.threads:
                    dense_run, lsc_run = _ort(dense_model, threads, False), _ort(lsc_model, threads, True)
                    dense, lsc = _pair_timing(partial(dense_run, feed), partial(lsc_run, feed), threads,
                                              options.budget)
                    if scipy_time is None and (run := peers.scipy_run(weight, activations)) is not None:
                        scipy_time = timing(run, options.budget)
                    torch_run = peers.torch_run(weight, activations, threads)
                    torch_time = timing(torch_run, options.budget) if torch_run else None
                    table.add(f"{k}×{n}", fmt_percent(sparsity, 0), batch, threads, fmt_seconds(dense.median),
                              fmt_speedup(dense, lsc), fmt_speedup(dense, scipy_time) if scipy_time else MISSING,
                              fmt_speedup(dense, torch_time) if torch_time else MISSING)
                    points.append({"shape": [k, n], "sparsity": sparsity, "batch": batch, "threads": threads,
                                   "dense": dense.median,
                                   "speedup": {"lsc": speedup(dense.median, lsc.median),
                                               **({"scipy CSR": speedup(dense.median, scipy_time.median)}
                                                  if scipy_time else {}),
                                               **({"torch CSR": speedup(dense.median, torch_time.median)}
                                                  if torch_time else {})}})
            del dense_model, lsc_model
            gc.collect()
    table.notes = ["Cells: median speed-up over onnxruntime's dense MatMul on the same pruned weight (dense time ÷ "
                   "engine time) and, in brackets, its range over 5 timing rounds, which alternate between dense and "
                   "LSCMatMul at 1 thread; “dense” is onnxruntime's time.",
                   "Seeded uniformly random masks, standard-normal values, lsc codec with automatic parameters.",
                   *peers.notes()]
    table.data = {"points": points}
    return table


def conv_table(options: SpeedOptions, progress: Callable[[str], None] = print) -> Table:
    """LSCConv ÷ onnxruntime dense Conv on ResNet-50 layer shapes (bench_conv's layers)."""
    rng = np.random.default_rng(options.seed)
    layers = {name: (x, w, cast(dict[str, object], attrs)) for name, x, w, attrs in bench_conv.LAYERS}
    table = Table("speed-conv", "Conv on pruned ResNet-50 layer shapes: LSCConv speed-up over onnxruntime dense",
                  ["layer", "input", "sparsity", "batch", "threads", "dense", "LSCConv"])
    points: list[dict[str, Any]] = []
    left_out = []
    for name in options.conv_layers:
        if name not in layers:
            left_out.append(f"{name} (not in bench_conv.LAYERS)")
            continue
        x_shape, w_shape, attributes = layers[name]
        for sparsity in options.sparsities:
            progress(f"speed: Conv {name} at {sparsity:.0%}")
            weight = rng.standard_normal(w_shape).astype(np.float32)
            weight.reshape(-1)[rng.choice(weight.size, round(sparsity * weight.size), replace=False)] = 0.0
            blob = np.frombuffer(lsc_ort.encode(weight, "lsc"), np.uint8)
            for batch in options.conv_batches:
                shape = (batch, *x_shape[1:])
                if 4 * int(np.prod(shape)) > options.conv_max_input_bytes:
                    left_out.append(f"{name} batch {batch}")
                    continue
                dense_model = bench_conv.model("Conv", numpy_helper.from_array(weight, "W"), shape, attributes)
                lsc_model = bench_conv.model("LSCConv", numpy_helper.from_array(blob, "W"), shape, attributes,
                                             lsc_ort.DOMAIN)
                feed = {"X": rng.standard_normal(shape).astype(np.float32)}
                for threads in options.threads:
                    dense_run, lsc_run = _ort(dense_model, threads, False), _ort(lsc_model, threads, True)
                    dense, lsc = _pair_timing(partial(dense_run, feed), partial(lsc_run, feed), threads,
                                              options.budget)
                    table.add(name, "×".join(map(str, x_shape[1:])), fmt_percent(sparsity, 0), batch, threads,
                              fmt_seconds(dense.median), fmt_speedup(dense, lsc))
                    points.append({"layer": name, "sparsity": sparsity, "batch": batch, "threads": threads,
                                   "speedup": {"lsc": speedup(dense.median, lsc.median)}})
    table.notes = ["Cells as in the MatMul table; weights in OIHW, seeded random masks. No sparse convolution in "
                   "scipy or torch to compare with."]
    if left_out:
        table.notes.append("left out (input too large for this mode, or unknown): " + ", ".join(sorted(set(left_out))))
    table.data = {"points": points}
    return table


def read_bandwidth(size_bytes: int, threads: int) -> float:
    """Bytes per second onnxruntime's ReduceSum reads from a buffer larger than the caches."""
    from onnx import TensorProto, helper

    count = size_bytes // 4
    graph = helper.make_graph([helper.make_node("ReduceSum", ["X"], ["Y"], keepdims=0)], "read",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [count])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    buffer = np.ones(count, np.float32)
    run = _ort(model, threads, False)
    numpy_time = timing(lambda: np.add.reduce(buffer), 0.5).low if threads == 1 else float("inf")
    ort_time = timing(lambda: run({"X": buffer}), 0.5).low
    return size_bytes / min(numpy_time, ort_time)


def eviction_bytes() -> int:
    """Bytes to read between cold runs so that nothing of a run stays cached: twice the last-level
    cache (at least 256 MiB), at most an eighth of the memory."""
    cache = machine.last_level_cache_bytes() or 64 << 20
    memory = machine.memory_bytes() or 8 << 30
    return max(256 << 20, min(2 * cache, memory // 8))


def cold_seconds(run: Callable[[], object], evict: Callable[[], object], samples: int) -> float:
    """Median seconds of one call of `run`, each after `evict` has pushed its data out of the caches."""
    run()
    times = []
    for _ in range(samples):
        evict()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def bandwidth_table(options: SpeedOptions, progress: Callable[[str], None] = print) -> Table:
    """GEMV (batch 1) at 90%: bytes each engine must read ÷ its time, against the read bandwidth."""
    rng = np.random.default_rng(options.seed)
    table = Table("speed-bandwidth", "GEMV at 90% sparsity, batch 1: bytes read per second vs measured read "
                  "bandwidth", ["K×N", "threads", "read bandwidth", "lsc blob", "LSC GB/s", "LSC % of bw",
                                "dense GB/s", "dense % of bw", "LSC speed-up", "LSC % from DRAM",
                                "dense % from DRAM"])
    progress("speed: read bandwidth")
    bandwidth = {t: read_bandwidth(options.bandwidth_bytes, t) for t in options.threads}
    flush = np.ones(eviction_bytes() // 4, np.float32)
    samples = options.cold_samples

    def evict() -> None:
        np.add.reduce(flush)

    rows = []
    for k, n in options.gemv_shapes:
        progress(f"speed: GEMV {k}×{n}")
        weight = bench_matmul.pruned(k, n, 0.9, rng)
        blob = lsc_ort.encode(weight, "lsc")
        dense_model, lsc_model = bench_matmul.matmul_model(weight), bench_matmul.lsc_model(blob, k, n)
        feed = {"A": rng.standard_normal((1, k)).astype(np.float32)}
        for threads in options.threads:
            dense_run, lsc_run = _ort(dense_model, threads, False), _ort(lsc_model, threads, True)
            dense = timing(partial(dense_run, feed), options.budget)
            lsc = timing(partial(lsc_run, feed), options.budget)
            lsc_rate, dense_rate = len(blob) / lsc.median, weight.nbytes / dense.median
            lsc_cold = len(blob) / cold_seconds(partial(lsc_run, feed), evict, samples)
            dense_cold = weight.nbytes / cold_seconds(partial(dense_run, feed), evict, samples)
            table.add(f"{k}×{n}", threads, f"{bandwidth[threads] / 1e9:.1f} GB/s", fmt_bytes(len(blob)),
                      f"{lsc_rate / 1e9:.1f}", fmt_percent(lsc_rate / bandwidth[threads], 0),
                      f"{dense_rate / 1e9:.1f}", fmt_percent(dense_rate / bandwidth[threads], 0),
                      fmt_speedup(dense, lsc), fmt_percent(lsc_cold / bandwidth[threads], 0),
                      fmt_percent(dense_cold / bandwidth[threads], 0))
            rows.append({"shape": [k, n], "threads": threads, "lsc_fraction": lsc_rate / bandwidth[threads],
                         "lsc_fraction_from_dram": lsc_cold / bandwidth[threads]})
        del dense_model, lsc_model, weight
        gc.collect()
    table.notes = [f"Read bandwidth: the faster of numpy's add.reduce and onnxruntime's ReduceSum over a "
                   f"{fmt_bytes(options.bandwidth_bytes)} float32 buffer (best round). Blobs smaller than the "
                   "last-level cache are read from it after the first run, so above 100% is possible there.",
                   "LSC reads the encoded blob (bytes ÷ LSCMatMul time); dense reads the fp32 weight.",
                   f"From DRAM: the median of {samples} single runs, each after a read of "
                   f"{fmt_bytes(flush.nbytes)} (twice the last-level cache, at least 256 MiB and at most an eighth "
                   "of the memory) has pushed the weight out of the caches."]
    table.data = {"bandwidth": bandwidth, "rows": rows}
    return table


def e2e_table(options: SpeedOptions, workdir: Path, progress: Callable[[str], None] = print) -> Table:
    """Whole models: the compressed model ÷ the pruned dense model, both in onnxruntime."""
    from benchmarks.models import DESCRIPTIONS, NAMES, prepare
    from lsc_ort.model_wheels import ModelUnavailable

    table = Table("speed-models", "End to end, batch 1: compressed model speed-up over the pruned dense model in "
                  "onnxruntime", ["model", "input", "sparsity", "threads", "dense", "compressed", "weights ÷"])
    points = []
    for key in options.e2e_models:
        for sparsity in options.e2e_sparsities:
            progress(f"speed: {key} end to end at {sparsity:.0%}")
            try:
                prepared = prepare(key, sparsity, workdir)
            except ModelUnavailable as error:
                table.notes.append(f"{key} skipped: {error}")
                break
            described = "×".join(map(str, next(iter(prepared.feeds.values())).shape))
            for threads in options.threads:
                dense_session = _file_session(prepared.pruned, threads)
                lsc_session = _file_session(prepared.compressed, threads)
                dense, lsc = _pair_timing(partial(dense_session.run, None, prepared.feeds),
                                          partial(lsc_session.run, None, prepared.feeds), threads,
                                          2 * options.budget, rounds=10)
                table.add(NAMES[key], described, fmt_percent(sparsity, 0), threads, fmt_seconds(dense.median),
                          fmt_speedup(dense, lsc),
                          f"{prepared.weights_dense_bytes / prepared.weights_encoded_bytes:.2f}×")
                points.append({"model": key, "sparsity": sparsity, "threads": threads,
                               "speedup": {"lsc": speedup(dense.median, lsc.median)}})
                del dense_session, lsc_session
                gc.collect()
    table.notes = ["One-shot magnitude pruning of every MatMul/Gemm/Conv weight (lsc-ort prune), then lsc-ort "
                   "compress (codec auto). “dense” is onnxruntime on the pruned model, timed (at 1 thread) in "
                   "rounds that alternate with the compressed model's; weights ratio = dense ÷ "
                   "encoded bytes of the rewritten layers. Outputs are checked equal by tests/test_models.py, "
                   "not here.", *(f"{NAMES[k]}: {DESCRIPTIONS[k]}" for k in options.e2e_models)]
    table.data = {"points": points}
    return table


def _file_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = lsc_ort.session_options()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def tvm_table(options: SpeedOptions, progress: Callable[[str], None] = print) -> Table:
    """LSC ÷ dense, both compiled with TVM for the CPU: the LSC model by ``tvm_schedules.compile``
    (issue 9); the dense baseline by ``benchmarks.bench_tvm``'s scheduled GEMM where that module
    exists (best of its tile shapes), else by ``tvm_schedules.compile`` of the dense MatMul."""
    threads = options.threads[0]
    table = Table("speed-tvm", "TVM on the CPU (llvm), 90% sparsity: LSC build speed-up over TVM's dense build",
                  ["K×N", "batch", "threads", "TVM dense", "TVM LSC", "TVM LSC time ÷ onnxruntime LSC time"])
    os.environ.setdefault("TVM_NUM_THREADS", str(threads))  # read when TVM starts its thread pool
    try:
        import onnx

        import tvm_schedules

        compile_model, run_model = tvm_schedules.compile, tvm_schedules.run  # type: ignore[attr-defined]
    except Exception as error:  # ImportError, AttributeError, or tvm_schedules' own TVM-missing error
        table.notes.append(f"skipped: tvm_schedules.compile / run are not available ({type(error).__name__}: "
                           f"{error}); they come with issue 9 (pip install -e .[tvm])")
        return table
    try:
        from benchmarks import bench_tvm  # type: ignore[attr-defined]
    except ImportError:
        bench_tvm = None
    rng = np.random.default_rng(options.seed)
    points = []
    for k, n in options.tvm_shapes:
        weight = bench_matmul.pruned(k, n, 0.9, rng)
        blob = lsc_ort.encode(weight, "lsc")
        dense_model, lsc_model = bench_matmul.matmul_model(weight), bench_matmul.lsc_model(blob, k, n)
        for batch in options.tvm_batches:
            progress(f"speed: TVM {k}×{n} batch {batch}")
            feed = {"A": rng.standard_normal((batch, k)).astype(np.float32)}
            try:
                lsc_exe = compile_model(onnx.load_from_string(lsc_model), "cpu")
                tiles = bench_tvm.dense_tiles(batch, k, n) if bench_tvm else None
                if tiles:
                    import tvm

                    activations = tvm.runtime.tensor(feed["A"], tvm.cpu())
                    main = lsc_exe.vm()["main"]
                    lsc = timing(partial(main, activations), options.budget)
                    dense = min((timing(partial(bench_tvm.scheduled_dense(tvm, weight, batch, tile), activations),
                                        options.budget) for tile in tiles), key=lambda t: t.median)
                else:
                    dense_exe = compile_model(onnx.load_from_string(dense_model), "cpu")
                    lsc = timing(partial(run_model, lsc_exe, feed), options.budget)
                    dense = timing(partial(run_model, dense_exe, feed), options.budget)
            except Exception as error:
                table.notes.append(f"{k}×{n} batch {batch}: TVM failed: {' '.join(str(error).split())[:200]}")
                continue
            ort_lsc = timing(partial(_ort(lsc_model, threads, True), feed), options.budget)
            table.add(f"{k}×{n}", batch, threads, fmt_seconds(dense.median), fmt_speedup(dense, lsc),
                      f"{lsc.median / ort_lsc.median:.2f}")
            points.append({"shape": [k, n], "batch": batch, "speedup": speedup(dense.median, lsc.median),
                           "scheduled_dense": bool(tiles)})
    if any(p["scheduled_dense"] for p in points):
        table.notes.append("TVM dense: the best of benchmarks/bench_tvm.py's scheduled GEMM tiles (TVM's CPU GEMM "
                           "recipe), run through the Relax VM like the LSC build; times without Python conversions.")
    if not all(p["scheduled_dense"] for p in points):
        table.notes.append("TVM dense (rows without a scheduled GEMM): tvm_schedules.compile of the dense MatMul, "
                           "TVM's default loops, untuned: a weak baseline that flatters LSC. Timed through "
                           "tvm_schedules.run, its Python call overhead included in both.")
    table.notes.append(f"TVM_NUM_THREADS={os.environ['TVM_NUM_THREADS']} (set before TVM starts its thread pool); "
                       "onnxruntime with the same intra-op threads.")
    table.data = {"points": points}
    return table
