"""``python -m benchmarks`` / ``lsc-ort bench``: run the benchmark jobs, write the report.

Each job measures one or more tables, caches them (``--resume`` reuses a cached job measured in
the same mode), and the report is written from all the tables at the end: ``sizes.md``,
``speed.md``, ``peers.md``, ``summary.md`` and the PNG plots, each with the machine header.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lsc_ort
from benchmarks import machine
from benchmarks.report import (
    MISSING,
    ResultStore,
    Table,
    atomic_write,
    fmt_bytes,
    fmt_duration,
    fmt_ratio,
    quoted,
    replace_headline,
)

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent.parent / "README.md"


@dataclass(frozen=True)
class Job:
    key: str
    group: str
    """The report file it goes to: sizes, speed or peers."""
    run: Callable[[Context], list[Table]]
    help: str


@dataclass
class Context:
    quick: bool
    threads: tuple[int, ...]
    budget_scale: float
    workdir: Path
    deepsparse_python: str | None
    started: float

    def progress(self, message: str) -> None:
        print(f"[{fmt_duration(time.perf_counter() - self.started):>11}] {message}", file=sys.stderr, flush=True)


# -- the jobs ----------------------------------------------------------------------------------


def _sizes_profiles(ctx: Context) -> list[Table]:
    from benchmarks.sizes import SizeOptions, profiles_tables

    return profiles_tables(ctx.quick, SizeOptions(codec_seconds=3.0 if ctx.quick else 20.0), ctx.progress)


def _sizes_sweep(ctx: Context) -> list[Table]:
    from benchmarks.sizes import sweep_table

    ctx.progress("sizes: sparsity sweep")
    return [sweep_table(ctx.quick, codec_seconds=3.0 if ctx.quick else 20.0)]


def _sizes_models(ctx: Context) -> list[Table]:
    from benchmarks.sizes import model_sizes_table

    sparsities = (0.9,) if ctx.quick else (0.7, 0.9, 0.95)
    return [model_sizes_table(("minilm", "magika"), sparsities, ctx.workdir, ctx.progress,
                              budget_seconds=20.0 if ctx.quick else None)]


def _sizes_fashion(ctx: Context) -> list[Table]:
    from benchmarks.fashion import fashion_table

    return [fashion_table(ctx.quick, ctx.workdir, ctx.progress)]


def _speed_options(ctx: Context) -> Any:
    from benchmarks.speed import SpeedOptions

    if ctx.quick:
        options = SpeedOptions(threads=ctx.threads, budget=0.12, matmul_shapes=((768, 3072),),
                               sparsities=(0.5, 0.7, 0.9, 0.95, 0.98), batches=(1, 128),
                               conv_layers=("resnet 3x3 256 s2",), conv_batches=(1,), gemv_shapes=((4096, 4096),),
                               bandwidth_bytes=256 << 20, cold_samples=3, e2e_sparsities=(0.9,),
                               tvm_shapes=((768, 3072),), tvm_batches=(1,))
    else:
        options = SpeedOptions(threads=ctx.threads)
    return replace(options, budget=options.budget * ctx.budget_scale)


def _speed(name: str) -> Callable[[Context], list[Table]]:
    def run(ctx: Context) -> list[Table]:
        from benchmarks import speed

        options = _speed_options(ctx)
        if name == "matmul":
            return [speed.matmul_table(options, ctx.progress)]
        if name == "conv":
            sparsities = options.sparsities if not ctx.quick else (0.7, 0.9, 0.95)
            return [speed.conv_table(replace(options, sparsities=sparsities), ctx.progress)]
        if name == "bandwidth":
            return [speed.bandwidth_table(options, ctx.progress)]
        if name == "models":
            return [speed.e2e_table(options, ctx.workdir, ctx.progress)]
        return [speed.tvm_table(options, ctx.progress)]

    return run


def _peers(ctx: Context) -> list[Table]:
    from benchmarks.peers import PeerOptions, peers_table

    options = PeerOptions(threads=ctx.threads, budget=(0.5 if ctx.quick else 2.0) * ctx.budget_scale,
                          deepsparse_python=ctx.deepsparse_python, repeats=1 if ctx.quick else 2)
    return [peers_table(options, ctx.workdir, ctx.progress)]


JOBS = (
    Job("sizes-profiles", "sizes", _sizes_profiles, "papers' per-layer profiles, fp32 and int8 values"),
    Job("sizes-sweep", "sizes", _sizes_sweep, "bits per weight vs sparsity, every codec and the bound"),
    Job("sizes-models", "sizes", _sizes_models, "MiniLM-L3 and magika, every codec"),
    Job("sizes-fashion", "sizes", _sizes_fashion, "LeNet-5 trained and pruned on Fashion-MNIST: accuracy, sizes"),
    Job("speed-matmul", "speed", _speed("matmul"), "LSCMatMul, scipy and torch CSR vs onnxruntime dense"),
    Job("speed-conv", "speed", _speed("conv"), "LSCConv vs onnxruntime dense on ResNet-50 layers"),
    Job("speed-bandwidth", "speed", _speed("bandwidth"), "GEMV bytes per second vs measured read bandwidth"),
    Job("speed-models", "speed", _speed("models"), "MiniLM-L3 and ResNet-50 end to end"),
    Job("speed-tvm", "speed", _speed("tvm"), "TVM LSC vs TVM dense"),
    Job("peers", "peers", _peers, "every installed engine on MiniLM-L3 and ResNet-50 at 90%"),
)
GROUPS = {"sizes": "Sizes", "speed": "Speed", "peers": "Peers"}


def select_jobs(names: Sequence[str] | None) -> list[Job]:
    """The jobs named (job keys or group names), in report order; all without names.

    Raises:
        ValueError: an unknown name.
    """
    if not names:
        return list(JOBS)
    known = {job.key for job in JOBS} | set(GROUPS)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown job(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [job for job in JOBS if job.key in names or job.group in names]


# -- the report --------------------------------------------------------------------------------


def headline_tables(tables: dict[str, Table]) -> list[Table]:
    """The rows the README shows: ADMM-LeNet against the paper; each engine on MiniLM and ResNet-50."""
    out = []
    fp32, int8 = tables.get("sizes-profiles-fp32"), tables.get("sizes-profiles-int8")
    if fp32 is not None:
        size = Table("headline-sizes", "Size: lossless encodings vs the papers (seeded masks at the papers' "
                     "densities)", ["network", "values", "lsc", "best codec", "entropy bound", "paper (quoted)"])
        from benchmarks.profiles import profile

        for table, values in ((fp32, "fp32"), (int8, "int8")):
            if table is None:
                continue
            for key, data in table.data.items():
                if values == "int8" and key == "admm-lenet":
                    continue
                best_name = min(data["sizes"], key=data["sizes"].get)
                lsc = data["sizes"].get("lsc")
                prof = profile(key)
                papers = "; ".join(f"{q.method} {q.ratio:g}×" for q in prof.quoted)
                size.add(prof.network, values, fmt_ratio(data["dense"] / lsc) if lsc else MISSING,
                         f"{best_name} {fmt_ratio(data['dense'] / data['sizes'][best_name])}",
                         fmt_ratio(data["dense"] / data["bound"]), quoted(papers) if papers else MISSING)
        size.notes = ["Ratios vs dense fp32, whole blobs. Deep Compression's figures include lossy 5–8-bit "
                      "quantization + Huffman coding; LSC's 51.03× is lossless with fp32 values, like our fp32 rows."]
        out.append(size)
    fashion = tables.get("sizes-fashion")
    if fashion is not None:
        rows = Table("headline-fashion", "LeNet-5 trained and pruned on Fashion-MNIST: what pruning and int8 cost",
                     ["weights", "test accuracy", "lsc size ÷ dense fp32", "entropy bound"])
        acc = fashion.data.get("accuracy")
        if not acc:  # skipped: the section stays, saying why
            rows.notes = list(fashion.notes) or ["skipped"]
        else:
            ratios = fashion.data["ratios"]
            rows.add("dense fp32", f"{100 * acc['dense']:.2f}%", "1×", MISSING)
            rows.add("pruned (Deep Compression's LeNet-5 densities), fp32", f"{100 * acc['pruned']:.2f}%",
                     fmt_ratio(ratios["pruned"]["lsc"]), fmt_ratio(ratios["pruned"]["bound"]))
            rows.add("pruned, int8 codes", f"{100 * acc['pruned-int8']:.2f}%",
                     fmt_ratio(ratios["pruned-int8"]["lsc"]), fmt_ratio(ratios["pruned-int8"]["bound"]))
            if "ort-int8" in acc:
                rows.add("pruned, onnxruntime dynamic int8", f"{100 * acc['ort-int8']:.2f}%", MISSING, MISSING)
            rows.notes = ["Test accuracy on the 10,000 test images in onnxruntime; details in sizes.md."
                          + (" Quick mode: barely trained." if fashion.data.get("quick") else "")]
        out.append(rows)
    peers = tables.get("peers-models")
    if peers is not None and peers.data:
        columns = ["model", "engine", "file", "speed-up 1 thr", "speed-up 2 thr", "RSS", "output error"]
        engines = Table("headline-engines", f"Speed and size at {peers.data[next(iter(peers.data))]['sparsity']:.0%} "
                        "sparsity, batch 1: every engine ÷ onnxruntime dense, same run", columns)
        from benchmarks.models import NAMES

        for key, model in peers.data.items():
            for label, row in model["engines"].items():
                engines.add(NAMES.get(key, key), label, fmt_bytes(row["file"]),
                            fmt_ratio(row["speedup"].get("1")), fmt_ratio(row["speedup"].get("2")),
                            fmt_bytes(row.get("rss_session")), row.get("error", MISSING))
        engines.notes = ["Medians from peers.md (ranges there); RSS after session creation, each engine in its own "
                         "process. MiniLM at 128 tokens; ResNet-50 at 224×224."]
        out.append(engines)
    return out


def write_report(store: ResultStore, tables: list[Table], info: dict[str, Any], *, mode: str, command: str,
                 seconds: float, skipped: Sequence[str]) -> list[Path]:
    from benchmarks.plots import matplotlib_available, plot_all

    header = machine.header(info, mode=mode, command=command)
    by_group: dict[str, list[Table]] = {group: [] for group in GROUPS}
    for table in tables:
        by_group[table.key.split("-")[0]].append(table)
    subtitle = f"{info['cpu']['model']}, {info['date']}"
    plots: dict[str, Path] = {}
    notes = []
    if matplotlib_available():
        plots = plot_all(tables, store.root, subtitle)
    else:
        notes.append("plots skipped: matplotlib is not installed (pip install -e .[bench])")
    written = []
    images = {"sizes": [("bits per weight vs sparsity", "bits_vs_sparsity.png")] if "bits" in plots else [],
              "speed": [("speed-up vs sparsity", "speedup_vs_sparsity.png")] if "speed" in plots else [],
              "peers": []}
    for group, title in GROUPS.items():
        if by_group[group]:
            written.append(store.write_markdown(group, f"{title} ({mode})", header, by_group[group],
                                                images[group], notes))
    headline = headline_tables({t.key: t for t in tables})
    links = ", ".join(f"[{group}]({group}.md)" for group in GROUPS if by_group[group])
    intro = [f"Full report: {links}. This command ran for {fmt_duration(seconds)} ({mode}).", *notes]
    intro.extend(f"{line}." for line in skipped)
    summary_images = [("speed-up vs sparsity", "speedup_vs_sparsity.png")] if "speed" in plots else []
    written.append(store.write_markdown("summary", f"Benchmark summary ({mode})", header, headline, summary_images,
                                        intro))
    written.extend(plots.values())
    return written


def readme_headline(store: ResultStore, tables: list[Table], info: dict[str, Any], seconds: float,
                    readme: Path = README) -> None:
    """Replace the README's headline section with the headline tables and the speed plot."""
    headline = headline_tables({t.key: t for t in tables})
    relative = store.root.resolve().relative_to(readme.parent.resolve()) if store.root.resolve().is_relative_to(
        readme.parent.resolve()) else store.root
    cpu = info["cpu"]
    lines = [f"Measured on {info['date']} on {cpu['model']} ({cpu['usable_cpus']} CPUs, threads "
             f"{', '.join(map(str, info['threads']))}), lsc-ort {info['revision']}, by `python -m benchmarks` in "
             f"{fmt_duration(seconds)}; {machine.contention(info.get('load_at_start'), cpu['usable_cpus'])}. "
             f"All tables: [{relative}/summary.md]({relative}/summary.md).", ""]
    for table in headline:
        lines.append(table.markdown().replace("### ", "#### "))
    if (store.root / "speedup_vs_sparsity.png").exists():
        lines.append(f"![speed-up vs sparsity]({relative}/speedup_vs_sparsity.png)")
    atomic_write(readme, replace_headline(readme.read_text(), "\n".join(lines)))


# -- command line ------------------------------------------------------------------------------


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    jobs = "\n".join(f"  {job.key:<16} {job.help}" for job in JOBS)
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Size and speed of lsc-ort against the papers, the entropy bound and\n"
                    "the engines users would pick instead: markdown tables and PNG plots\n"
                    "in benchmarks/results/ (see benchmarks/README.md).",
        epilog=f"jobs (--only takes job names or the groups sizes, speed, peers):\n{jobs}\n\n"
               "examples:\n"
               f"  {prog} --quick           # minutes: every job, small grids\n"
               f"  {prog}                   # the full run\n"
               f"  {prog} --resume --update-readme\n"
               f"  {prog} --quick --only sizes-profiles sizes-sweep")
    parser.add_argument("--quick", action="store_true", help="small grids and short timings (under 5 min on 2 cores)")
    parser.add_argument("--only", nargs="+", metavar="JOB", help="run only these jobs or groups")
    parser.add_argument("--out", type=Path, help="output folder (default: benchmarks/results, or "
                        "benchmarks/results/quick with --quick)")
    parser.add_argument("--resume", action="store_true", help="reuse the jobs a previous run of the same mode "
                        "cached in the output folder")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts (default 1 2)")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every timing budget (default 1)")
    parser.add_argument("--deepsparse-python", metavar="PYTHON", help="the Python of a DeepSparse 1.8 virtual "
                        "environment (default: $LSC_ORT_DEEPSPARSE_PYTHON)")
    parser.add_argument("--update-readme", action="store_true", help="write the headline tables and plot into "
                        "README.md (for the full run on a quiet machine)")
    parser.add_argument("--keep-models", action="store_true", help="keep the pruned / compressed models in "
                        "OUT/.work")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m benchmarks") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        jobs = select_jobs(args.only)
    except ValueError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    if any(t < 1 for t in args.threads) or args.budget_scale <= 0:
        print(f"{prog}: error: --threads must be >= 1 and --budget-scale > 0", file=sys.stderr)
        return 2
    mode = "quick" if args.quick else "full"
    out = (args.out or (RESULTS / "quick" if args.quick else RESULTS)).resolve()
    threads = tuple(dict.fromkeys(args.threads))
    run_key = {"mode": mode, "threads": list(threads), "budget_scale": args.budget_scale,
               "codecs": lsc_ort.available_codecs()}
    store = ResultStore(out, run_key)
    started = time.perf_counter()
    workdir = out / ".work" if args.keep_models else Path(tempfile.mkdtemp(prefix="lsc-ort-bench-"))
    ctx = Context(args.quick, threads, args.budget_scale, workdir, args.deepsparse_python, started)
    info = machine.machine_info(threads)
    command = " ".join([prog, *(argv if argv is not None else sys.argv[1:])])
    ctx.progress(f"{mode} run of {len(jobs)} job(s) into {out}; "
                 f"{machine.contention(info['load_at_start'], info['cpu']['usable_cpus'])}")
    measured: dict[str, list[Table]] = {}
    failed: list[str] = []
    try:
        for job in jobs:
            cached = store.load(job.key) if args.resume else None
            if cached is not None:
                ctx.progress(f"{job.key}: cached, reused (--resume)")
                measured[job.key] = cached
                continue
            before = machine.load_average()
            job_start = time.perf_counter()
            try:
                made = job.run(ctx)
            except Exception as error:  # one broken job must not lose the others
                ctx.progress(f"{job.key}: FAILED: {type(error).__name__}: {error}")
                failed.append(f"{job.key} ({type(error).__name__}: {' '.join(str(error).split())[:200]})")
                continue
            for table in made:
                table.seconds = time.perf_counter() - job_start
                table.context = machine.section_context(before, info["cpu"]["usable_cpus"])
            store.save(job.key, made)
            measured[job.key] = made
            ctx.progress(f"{job.key}: done in {fmt_duration(time.perf_counter() - job_start)}")
    finally:
        if not args.keep_models:
            shutil.rmtree(workdir, ignore_errors=True)
    reused = []
    for job in JOBS:  # tables of jobs not selected now, from an earlier run of the same mode here
        if job.key not in measured and job not in jobs and (cached := store.load(job.key)) is not None:
            measured[job.key] = cached
            reused.append(job.key)
    tables = [table for job in JOBS for table in measured.get(job.key, [])]
    seconds = time.perf_counter() - started
    notes = [f"failed: {f}" for f in failed]
    if reused:
        notes.append("not run by this command, reused from an earlier run in this folder: " + ", ".join(reused))
    written = write_report(store, tables, info, mode=mode, command=command, seconds=seconds, skipped=notes)
    if args.update_readme:
        readme_headline(store, tables, info, seconds)
        written.append(README)
    ctx.progress(f"{mode} run took {fmt_duration(seconds)}; wrote " + ", ".join(
        str(p.relative_to(out)) if p.is_relative_to(out) else str(p) for p in written))
    return 1 if failed else 0
