"""Run one model in one inference engine, in a process of its own, and report as JSON.

Started by :mod:`benchmarks.peers` once per engine so that each resident-memory figure (RSS after
the session is created) belongs to that engine alone. Standalone on purpose: it imports only the
standard library, numpy and the engine, so it also runs under another virtual environment's
Python (DeepSparse 1.8 lives in its own, with numpy < 2 and onnx 1.14).

    python benchmarks/engine_worker.py --engine onnxruntime --model m.onnx --feeds feeds.npz \
        --threads 1 2 --budget 1.0 --json result.json [--outputs outputs.npz]

Engines: ``onnxruntime``, ``lsc`` (onnxruntime with the lsc-ort custom ops), ``openvino-f32``,
``openvino`` (OpenVINO's default precision for the CPU, bf16 where the CPU has AMX / AVX-512
BF16), ``deepsparse``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ENGINES = ("onnxruntime", "lsc", "openvino-f32", "openvino", "deepsparse")


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident set size of this process, from /proc (0 where unavailable)."""
    current = peak = 0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return current, peak


def time_rounds(run: Callable[[], object], budget: float, rounds: int = 5) -> dict[str, float]:
    """Mean seconds per call over ``rounds`` rounds of back-to-back calls filling about
    ``budget`` seconds: median, fastest and slowest round."""
    run()
    start, calls = time.perf_counter(), 0
    while calls < 2 or time.perf_counter() - start < budget / (2 * rounds):
        run()
        calls += 1
    estimate = (time.perf_counter() - start) / calls
    per_round = max(1, round(budget / rounds / max(estimate, 1e-9)))
    means = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            run()
        means.append((time.perf_counter() - start) / per_round)
    means.sort()
    return {"median": means[len(means) // 2], "low": means[0], "high": means[-1], "runs": per_round * rounds}


def time_interleaved(runs: Sequence[Callable[[], object]], budget: float, rounds: int = 5) -> list[dict[str, float]]:
    """:func:`time_rounds` of several runs that take turns round by round (each about ``budget``
    seconds in all), so that drift of the host's speed reaches all of them alike. For sessions of
    one thread: the idle thread pool of a multi-threaded session spins, and slows the others
    (MiniLM-L3's dense session at 2 threads by 1.4x)."""
    estimates = []
    for run in runs:
        run()
        start, calls = time.perf_counter(), 0
        while calls < 2 or time.perf_counter() - start < budget / (2 * rounds):
            run()
            calls += 1
        estimates.append((time.perf_counter() - start) / calls)
    per_round = [max(1, round(budget / rounds / max(e, 1e-9))) for e in estimates]
    means: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            for _ in range(per_round[i]):
                run()
            means[i].append((time.perf_counter() - start) / per_round[i])
    results = []
    for i, values in enumerate(means):
        values.sort()
        results.append({"median": values[len(values) // 2], "low": values[0], "high": values[-1],
                        "runs": per_round[i] * rounds})
    return results


class Engine:
    """A loaded model that runs the feeds: ``load(threads)`` then ``run()``."""

    name = ""

    def __init__(self, model: str, feeds: dict[str, np.ndarray]) -> None:
        self.model, self.feeds = model, feeds

    def version(self) -> str:
        raise NotImplementedError

    def load(self, threads: int) -> None:
        raise NotImplementedError

    def run(self) -> list[np.ndarray]:
        raise NotImplementedError

    def unload(self) -> None:
        for attribute in ("session", "compiled", "request", "engine"):
            if hasattr(self, attribute):
                delattr(self, attribute)
        gc.collect()

    def describe(self) -> str:
        return ""


class OnnxRuntime(Engine):
    name = "onnxruntime"

    def version(self) -> str:
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"

    def options(self) -> Any:
        import onnxruntime

        return onnxruntime.SessionOptions()

    def load(self, threads: int) -> None:
        import onnxruntime

        options = self.options()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(self.model, options, providers=["CPUExecutionProvider"])

    def run(self) -> list[np.ndarray]:
        return self.session.run(None, self.feeds)


class Lsc(OnnxRuntime):
    name = "lsc"

    def version(self) -> str:
        import lsc_ort

        return f"{super().version()}, lsc-ort {lsc_ort.__version__}"

    def options(self) -> Any:
        import lsc_ort

        return lsc_ort.session_options()

    def describe(self) -> str:
        from lsc_ort.native import kernel_name

        return kernel_name()


class OpenVino(Engine):
    name = "openvino"
    precision: str | None = None

    def version(self) -> str:
        import openvino

        return f"openvino {openvino.__version__}"

    def load(self, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(self.model)
        model.reshape({name: ov.PartialShape(list(value.shape)) for name, value in self.feeds.items()})
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                  "NUM_STREAMS": 1}
        if self.precision:
            config["INFERENCE_PRECISION_HINT"] = self.precision
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self) -> list[np.ndarray]:
        result = self.request.infer({name: value for name, value in self.feeds.items()})
        return [np.asarray(result[port]) for port in self.compiled.outputs]

    def describe(self) -> str:
        try:
            return f"precision {self.compiled.get_property('INFERENCE_PRECISION_HINT')}"
        except Exception:
            return ""


class OpenVinoF32(OpenVino):
    name = "openvino-f32"
    precision = "f32"


class DeepSparse(Engine):
    name = "deepsparse"

    def version(self) -> str:
        import deepsparse

        return f"deepsparse {deepsparse.__version__}"

    def load(self, threads: int) -> None:
        from deepsparse import Engine as DsEngine

        batch = next(iter(self.feeds.values())).shape[0] if self.feeds else 1
        shapes = [list(value.shape) for value in self.feeds.values()]
        self.engine = DsEngine(model=self.model, batch_size=batch, num_cores=threads, input_shapes=shapes)
        self.order = list(self.feeds.values())

    def run(self) -> list[np.ndarray]:
        return list(self.engine.run(self.order))


_ENGINES: dict[str, type[Engine]] = {e.name: e for e in (OnnxRuntime, Lsc, OpenVino, OpenVinoF32, DeepSparse)}


def measure(engine_name: str, model: str, feeds: dict[str, np.ndarray], threads: list[int],
            budget: float) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Load and time ``model`` in one engine; the dict holds versions, RSS and timings."""
    baseline_rss, _ = rss_bytes()
    engine = _ENGINES[engine_name](model, feeds)
    result: dict[str, Any] = {"engine": engine_name, "version": engine.version(), "rss_imports": baseline_rss,
                              "latency": {}}
    outputs: list[np.ndarray] = []
    for index, count in enumerate(threads):
        start = time.perf_counter()
        engine.load(count)
        if index == 0:
            result["load_seconds"] = time.perf_counter() - start
            result["rss_session"] = rss_bytes()[0]
            outputs = [np.asarray(o) for o in engine.run()]
            result["rss_first_run"] = rss_bytes()[0]
            result["describe"] = engine.describe()
        result["latency"][str(count)] = time_rounds(engine.run, budget)
        engine.unload()
    result["rss_peak"] = rss_bytes()[1]
    return result, outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=ENGINES, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--feeds", required=True, help=".npz of the inputs, in graph input order")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timing per thread count")
    parser.add_argument("--json", required=True, help="where to write the result")
    parser.add_argument("--outputs", help="where to write the outputs of the first run (.npz)")
    args = parser.parse_args(argv)
    with np.load(args.feeds) as data:
        feeds = {name: data[name] for name in data.files}
    try:
        result, outputs = measure(args.engine, args.model, feeds, args.threads, args.budget)
    except Exception as error:
        message = " ".join(str(error).split())
        result, outputs = {"engine": args.engine, "error": f"{type(error).__name__}: {message}"}, []
    Path(args.json).write_text(json.dumps(result, indent=1))
    if args.outputs and outputs:
        np.savez(args.outputs, *outputs)
    return 0 if "error" not in result else 3


if __name__ == "__main__":
    os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")  # DeepSparse: no usage reporting
    sys.exit(main())
