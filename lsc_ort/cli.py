"""The ``lsc-ort`` command line: compress, inspect, verify, decompress, prune, demo, bench,
tvm-compile.

Exit codes: 0 success, 1 ``verify`` found outputs beyond tolerance, 2 error (one line on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lsc_ort.codecs import available_codecs
from lsc_ort.report import (
    LAYER_LEGEND,
    Column,
    FittedTable,
    Totals,
    layer_table,
    markdown_report,
    shape_text,
    totals,
)

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2
PROG = "lsc-ort"

_DESCRIPTION = """\
Store the pruned weights of an ONNX model in compressed, encoded form (LSCMatMul / LSCConv
custom ops reading blobs), and run it from there in onnxruntime.

The main job, on any model:
  lsc-ort prune model.onnx -o pruned.onnx --sparsity 0.9  # if it is not pruned yet
  lsc-ort compress pruned.onnx -o compressed.onnx --report report.md
  lsc-ort verify pruned.onnx compressed.onnx
Or see it all on a small built-in model: lsc-ort demo

Tables fit the terminal; names wrap. Piped or redirected, they are printed one row per line at
their full width (for grep, less -S and files); set COLUMNS=80 to wrap them as on a terminal.
"""

_TABLE_NOTE = f"""
The per-layer table shows node, op, shape, sparsity, codec, size, ratio and bound; -v adds the
row number, weight name, dtype and exact byte counts. {LAYER_LEGEND}. f2f layers show their
encoding efficiency after the codec (E = care bits ÷ stored value bits; 1.00 is the limit)."""

_EPILOGS = {
    "compress": """\
examples:
  lsc-ort compress pruned.onnx -o compressed.onnx
  lsc-ort compress pruned.onnx -o compressed.onnx --codec lsc --min-sparsity 0.8
  lsc-ort compress pruned.onnx -o compressed.onnx --codec f2f
  lsc-ort compress pruned.onnx -o compressed.onnx --report report.md
  lsc-ort compress big.onnx -o big-lsc.onnx  # external data in and out: big-lsc.onnx.data

Before encoding, BatchNormalization, per-channel Mul/Add and biases are folded into the
Conv/Gemm weights and layout Transposes around convolutions cancelled (onnxruntime's basic
optimizer; zeros stay zeros); --no-fold skips this. Each attention core (MatMul, scale,
mask Add, Softmax, MatMul) becomes one LSCAttention node; --no-fuse-attention keeps it. A
masked mean pooling becomes one MatMul with the mask; --no-fuse-pooling keeps it.
Layers whose weights have fewer zeros than --min-sparsity stay dense (the weights of MSWU
unified blocks, but the one value each block stores, count as zeros); with --codec auto each
layer gets the codec that stores it in fewest bytes, or stays dense if none beats dense storage;
a named codec is used for every layer above --min-sparsity, even where dense would be smaller.
"""
    + _TABLE_NOTE,
    "inspect": """\
examples:
  lsc-ort inspect compressed.onnx
  lsc-ort inspect pruned.onnx --report layers.md  # what compress would see
  lsc-ort inspect compressed.onnx -v              # all columns
"""
    + _TABLE_NOTE,
    "verify": """\
examples:
  lsc-ort verify pruned.onnx compressed.onnx
  lsc-ort verify pruned.onnx compressed.onnx --inputs inputs.npz --rtol 1e-5
  lsc-ort verify pruned.onnx compressed.onnx --shape input_ids=2,64 \\
                 --shape attention_mask=2,64
  lsc-ort verify pruned.onnx compressed.onnx --engine reference  # no native library

An output passes when |compressed - original| <= rtol * (1 + |original|) everywhere.
Random inputs: floats ~ N(0, 1); integer inputs are token ids in [0, 100), except attention
masks (ones), token-type ids (zeros) and position ids (0, 1, ...); symbolic dims become 1 (first
dim), 16 (sequence inputs) or 32 (image inputs) unless --shape says otherwise.""",
    "decompress": """\
examples:
  lsc-ort decompress compressed.onnx -o restored.onnx

The weights are decoded bit-exactly into initializers of standard MatMul / Gemm / Conv nodes.
A model without LSCMatMul / LSCConv nodes is written unchanged.""",
    "prune": """\
examples:
  lsc-ort prune model.onnx -o pruned.onnx --sparsity 0.9
  lsc-ort prune model.onnx -o pruned.onnx --sparsity 0.95 --ops MatMul,Gemm
  lsc-ort prune model.onnx -o u.onnx --method mswu --sparsity 0.6 --unify 0.3
  lsc-ort prune model.onnx -o k.onnx --method mswu --block kernel --sparsity 0.5

magnitude: each MatMul / Gemm / Conv weight (initializer or Constant node) gets exactly
round(sparsity * size) of its smallest-magnitude elements set to +0.0.
mswu: each weight is cut into blocks (--block, outputs x inputs as in PyTorch's [out, in]
layout whatever the op stores; 'kernel' = one Conv kernel); round(sparsity * blocks) are pruned
and round(unify * blocks) others unified (one shared magnitude, signs kept: one stored value and
one multiply per block), chosen nearest to the weight. Compress with --codec auto or mswu.
One-shot pruning without fine-tuning changes what the model computes: it is for trying lsc-ort
out (lsc_ort.train trains the MSWU structure with ADMM). The weights of LSCMatMul / LSCConv
nodes are already encoded and are not pruned (decompress them first).""",
    "demo": """\
examples:
  lsc-ort demo
  lsc-ort demo --workdir ./lenet-demo

Builds a LeNet-5-like model (Conv, Gemm, MatMul; seeded random weights), prunes it to 90 %,
compresses it, prints the per-layer table and verifies the outputs (with onnxruntime and the
native library when it is built, else with the numpy reference ops). Nothing is downloaded.""",
    "tvm-compile": """\
examples:
  lsc-ort tvm-compile compressed.onnx --target cpu -o model.so
  lsc-ort tvm-compile compressed.onnx --target arm -o model-arm.so
  lsc-ort tvm-compile compressed.onnx --target cuda -o model-cuda.so
  lsc-ort tvm-compile bert.onnx -o bert.so --shape input_ids=1,128
  lsc-ort tvm-compile m.onnx -o m.so --target '{"kind":"llvm","mcpu":"znver4"}'

arm cross-compiles for aarch64 Linux with NEON (needs aarch64-linux-gnu-g++); cuda needs nvcc.
Needs Apache TVM (pip install 'lsc-ort[tvm]'). The LSC layers stay compressed in the
library. Load it with tvm.runtime.load_module and run it with tvm.relax.VirtualMachine
(docs/tvm.md).""",
}


def _ops(text: str) -> list[str]:
    ops = [op.strip() for op in text.split(",") if op.strip()]
    if not ops:
        raise argparse.ArgumentTypeError("give at least one op type, e.g. MatMul,Gemm,Conv")
    return ops


def _number(low: float, high: float = float("inf")) -> Callable[[str], float]:
    """An argparse type: a float in [low, high]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            bounds = f"in [{low:g}, {high:g}]" if high != float("inf") else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


_fraction = _number(0.0, 1.0)
_positive = _number(0.0)


def _external(text: str) -> bool | None:
    return {"auto": None, "yes": True, "no": False}[text]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs fitted to the terminal: prose paragraphs are reflowed, indented
    lines (examples) kept, their ``# comment`` moved to a line of its own if the line is too wide."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                out.extend(textwrap.wrap(" ".join(paragraph), width, initial_indent=indent, subsequent_indent=indent))
                paragraph.clear()

        for line in text.splitlines():
            if line and not line[0].isspace() and not line.endswith(":"):
                paragraph.append(line.strip())
                continue
            flush()
            code, sep, comment = line.partition("  # ")
            if len(indent + line) > width and sep:
                lead = len(code) - len(code.lstrip())
                out.extend([indent + code.rstrip(), indent + " " * (lead + 4) + "# " + comment.strip()])
            else:
                out.append(indent + line)
        flush()
        return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lsc-ort``."""
    from lsc_ort.pruning import DEFAULT_BLOCK, METHODS
    from lsc_ort.rewriter.compress import DEFAULT_OPS
    from lsc_ort.verify import DEFAULT_RTOL, ENGINES

    formatter = HelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_DESCRIPTION,
        formatter_class=formatter,
        epilog="exit codes: 0 success, 1 verify mismatch, 2 error",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("--version", action="version", version=_version_text(), help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help_text, description=help_text, epilog=_EPILOGS[name], formatter_class=formatter
        )

    codecs = ["auto", *available_codecs()]
    external_help = (
        "write external data (OUT.onnx.data): auto = when the input has external data or "
        "the output would pass 2 GB (default: auto)"
    )
    ops_help = f"comma-separated op types (default: {','.join(DEFAULT_OPS)})"

    sub = command("compress", "Rewrite MatMul/Gemm/Conv with sparse constant weights into LSC ops.")
    sub.add_argument("input", metavar="IN.onnx", help="model to compress (never modified)")
    sub.add_argument("-o", "--output", metavar="OUT.onnx", required=True, help="compressed model to write")
    sub.add_argument(
        "--codec",
        choices=codecs,
        default="auto",
        metavar="CODEC",
        help=f"codec for every layer: {', '.join(codecs[1:])}; or auto = smallest per layer (default: auto)",
    )
    sub.add_argument(
        "--min-sparsity",
        type=_fraction,
        default=0.5,
        metavar="S",
        help="layers with a smaller fraction of zero weights stay dense (default: 0.5)",
    )
    sub.add_argument(
        "--keep-negative-zeros",
        action="store_true",
        help="store weights equal to -0.0 (left by pruning with a mask) as non-zeros instead of as +0.0",
    )
    sub.add_argument("--ops", type=_ops, default=list(DEFAULT_OPS), metavar="OPS", help=ops_help)
    sub.add_argument(
        "--no-fold",
        dest="fold",
        action="store_false",
        help="do not fold BatchNormalization, per-channel Mul/Add and biases into the weights "
        "(nor cancel layout Transposes) before encoding",
    )
    sub.add_argument(
        "--no-fuse-attention",
        dest="fuse_attention",
        action="store_false",
        help="keep each attention core (MatMul, scale, mask Add, Softmax, MatMul) as it is instead of "
        "fusing it into one LSCAttention node",
    )
    sub.add_argument(
        "--no-fuse-pooling",
        dest="fuse_pooling",
        action="store_false",
        help="keep a masked mean pooling of token embeddings (two ReduceSum over the tokens) as it is "
        "instead of computing it as one MatMul with the mask",
    )
    sub.add_argument("--report", metavar="REPORT.md", help="also write the per-layer table as markdown")
    sub.add_argument("--external-data", choices=("auto", "yes", "no"), default="auto", help=external_help)
    sub.add_argument(
        "-v", "--verbose", action="store_true", help="all table columns; list every node left as it was, and why"
    )
    sub.set_defaults(func=_compress)

    sub = command("inspect", "Print the per-layer table of a (compressed) model without changing it.")
    sub.add_argument("model", metavar="MODEL.onnx", help="model to inspect")
    sub.add_argument("--report", metavar="REPORT.md", help="also write the table as markdown")
    sub.add_argument("-v", "--verbose", action="store_true", help="all table columns")
    sub.set_defaults(func=_inspect)

    sub = command(
        "verify", "Run the original and the compressed model on the same inputs and compare outputs."
    )
    sub.add_argument("original", metavar="ORIG.onnx", help="reference model (e.g. the pruned dense model)")
    sub.add_argument("compressed", metavar="COMPRESSED.onnx", help="model to check")
    sub.add_argument(
        "--inputs",
        default="random",
        metavar="random|FILE.npz",
        help="random inputs (default) or an .npz file keyed by input name",
    )
    sub.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    sub.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help="shape of a random input (repeatable)",
    )
    sub.add_argument(
        "--rtol", type=_positive, default=DEFAULT_RTOL, help=f"relative tolerance (default: {DEFAULT_RTOL:g})"
    )
    sub.add_argument(
        "--engine",
        choices=ENGINES,
        default="onnxruntime",
        help="onnxruntime (with the native custom ops; default) or reference (numpy, slow)",
    )
    sub.set_defaults(func=_verify)

    sub = command("decompress", "Turn LSC ops back into standard MatMul/Gemm/Conv with the decoded weights.")
    sub.add_argument("input", metavar="IN.onnx", help="compressed model (never modified)")
    sub.add_argument("-o", "--output", metavar="OUT.onnx", required=True, help="standard ONNX model to write")
    sub.add_argument("--external-data", choices=("auto", "yes", "no"), default="auto", help=external_help)
    sub.set_defaults(func=_decompress)

    sub = command(
        "prune", "One-shot pruning (magnitude or MSWU) of MatMul/Gemm/Conv weights, to try lsc-ort on any model."
    )
    sub.add_argument("input", metavar="IN.onnx", help="model to prune (never modified)")
    sub.add_argument("-o", "--output", metavar="OUT.onnx", required=True, help="pruned model to write")
    sub.add_argument(
        "--sparsity",
        type=_fraction,
        required=True,
        metavar="S",
        help="fraction of each weight (mswu: of its blocks) set to zero, e.g. 0.9",
    )
    sub.add_argument(
        "--method", choices=METHODS, default="magnitude", help="pruning criterion (default: magnitude)"
    )
    sub.add_argument(
        "--block",
        default=DEFAULT_BLOCK,
        metavar="RxC|kernel",
        help=f"mswu block, outputs x inputs, e.g. 1x4, 4x1, 2x2, or kernel (default: {DEFAULT_BLOCK})",
    )
    sub.add_argument(
        "--unify",
        type=_fraction,
        default=0.0,
        metavar="U",
        help="mswu: fraction of the blocks unified, at most 1 - S (default: 0)",
    )
    sub.add_argument("--ops", type=_ops, default=list(DEFAULT_OPS), metavar="OPS", help=ops_help)
    sub.add_argument("--external-data", choices=("auto", "yes", "no"), default="auto", help=external_help)
    sub.set_defaults(func=_prune)

    sub = command("tvm-compile", "Compile a (compressed) model with Apache TVM into a shared library.")
    sub.add_argument("input", metavar="IN.onnx", help="model to compile (never modified)")
    sub.add_argument("-o", "--output", metavar="OUT.so", required=True, help="shared library to write")
    sub.add_argument(
        "--target",
        default="cpu",
        metavar="cpu|cuda|arm|TARGET",
        help="cpu (this host), cuda, arm (aarch64 Linux, NEON) or a TVM target as JSON (default: cpu)",
    )
    sub.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help="fix the shape of an input (repeatable; names keep a dimension symbolic)",
    )
    sub.set_defaults(func=_tvm_compile)

    sub = command("demo", "Build, prune, compress and verify a small LeNet-like model.")
    sub.add_argument(
        "--workdir", metavar="DIR", help="where to write the demo's files (default: a new temp dir)"
    )
    sub.add_argument("-v", "--verbose", action="store_true", help="all columns of the per-layer table")
    sub.set_defaults(func=_demo)

    sub = commands.add_parser(
        "bench",
        help="Run the benchmark report (source checkout only; --help there lists its options).",
        description="Run python -m benchmarks from a source checkout.",
        add_help=False,
    )
    sub.set_defaults(func=_bench, bench_args=[])
    return parser


UNWRAPPED_WIDTH = 10_000
"""Console width when stdout is not a terminal and COLUMNS is unset: tables at full width."""


def _version_text() -> str:
    from importlib.metadata import PackageNotFoundError, version

    import lsc_ort

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"{PROG} {lsc_ort.__version__} (onnx {of('onnx')}, onnxruntime {of('onnxruntime')})"


def _console() -> Console:
    """A console for stdout: the terminal's width, or COLUMNS when set; else (a pipe or a file)
    an unlimited width, so that each table row stays on one line."""
    console = Console(highlight=False, soft_wrap=False)
    columns = os.environ.get("COLUMNS", "")
    if not console.is_terminal and not (columns.isdigit() and int(columns) > 0):
        console = Console(highlight=False, soft_wrap=False, width=UNWRAPPED_WIDTH)
    return console


@contextlib.contextmanager
def _progress(console: Console, description: str) -> Iterator[Callable[[int, int, str], None]]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[node]}", style="dim"),
    )
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=None, node="")

        def update(done: int, total: int, node: str) -> None:
            progress.update(task, completed=done, total=total, node=node)

        yield update


def _size(path: str | os.PathLike) -> int:
    from lsc_ort.rewriter.model_io import file_size

    return file_size(path)


def _totals_lines(total: Totals) -> list[str]:
    if not total.layers:
        return ["no MatMul / Gemm / Conv layer with a constant weight"]
    efficiency = total.entropy_bound_bytes / total.encoded_bytes if total.encoded_bytes else 0.0
    return [
        f"{total.encoded_layers} of {total.layers} layers encoded; weights {total.dense_bytes:,} B dense → "
        f"{total.encoded_bytes:,} B stored ({total.ratio:.2f}× smaller); entropy bound "
        f"{total.entropy_bound_bytes:,.0f} B ({efficiency:.0%} of stored)"
    ]


def size_change(before: int, after: int) -> str:
    """``8.22× smaller``, ``8.22× larger`` or ``same size``: how ``after`` bytes compare."""
    if before == after:
        return "same size"
    if not before or not after:
        return "smaller" if after < before else "larger"
    if after < before:
        return f"{before / after:.2f}× smaller"
    return f"{after / before:.2f}× larger"


def _file_line(src: str, src_bytes: int, dst: str, dst_bytes: int) -> str:
    return f"file: {src} {src_bytes:,} B → {dst} {dst_bytes:,} B ({size_change(src_bytes, dst_bytes)})"


def _compress(args: argparse.Namespace, console: Console) -> int:
    from lsc_ort.rewriter import compress_file

    _check_report_path(args.report)
    with _progress(console, "compressing") as progress:
        result = compress_file(
            args.input,
            args.output,
            codec=args.codec,
            min_sparsity=args.min_sparsity,
            keep_negative_zeros=args.keep_negative_zeros,
            ops=args.ops,
            fold=args.fold,
            fuse_attention=args.fuse_attention,
            fuse_pooling=args.fuse_pooling,
            external_data=_external(args.external_data),
            progress=progress,
        )
    rows = result.layers
    title = f"{args.output} (codec {args.codec}, min sparsity {args.min_sparsity:g})"
    console.print(layer_table(rows, title, verbose=args.verbose))
    lines = [
        *_totals_lines(totals(rows)),
        _file_line(args.input, _size(args.input), args.output, _size(args.output)),
    ]
    if result.folded is not None:
        lines.append(f"before encoding: {result.folded.summary()}")
        lines += [f"  {note}" for note in result.folded.notes]
    fired = ", ".join(f"{name} {count}" for name, count in sorted(result.fired.items())) or "none"
    lines.append(f"rewritten nodes: {fired}")
    if result.absorbed:
        absorbed = ", ".join(f"{count} {op}" for op, count in result.absorbed.most_common())
        lines.append(f"absorbed into them: {absorbed}")
    if result.tile_pairs:
        lines.append(f"handed on in row tiles: {result.tile_pairs} tensor(s)")
    if result.attention:
        lines.append(f"attention cores fused into LSCAttention: {result.attention}")
    if result.pooling:
        lines.append(f"masked mean poolings computed as a MatMul with the mask: {result.pooling}")
    if result.declined and not args.verbose:
        lines.append(
            f"{len(result.declined)} other MatMul/Gemm/Conv node(s) left as they are "
            "(e.g. weights computed at run time); -v lists them"
        )
    kept = [f"kept dense: {row.node}: {row.note}" for row in rows if row.note and not row.shared]
    kept += [f"left as is: {node}: {reason}" for node, reason in result.declined]
    for line in lines:
        console.print(line)
    if args.verbose:
        for line in kept:
            console.print(f"  {line}")
    if args.report:
        from lsc_ort.rewriter.model_io import atomic_write_text

        atomic_write_text(
            args.report, markdown_report(rows, f"lsc-ort compress {args.input}", [*lines, *kept]), "report"
        )
        console.print(f"report: {args.report}")
    return EXIT_OK


def _check_report_path(report: str | None) -> None:
    if report is not None:
        from lsc_ort.rewriter.model_io import check_writable

        check_writable(report, "report")


def _inspect(args: argparse.Namespace, console: Console) -> int:
    from lsc_ort.rewriter import layer_rows
    from lsc_ort.rewriter.model_io import atomic_write_text

    _check_report_path(args.report)
    rows = layer_rows(args.model)
    console.print(layer_table(rows, str(args.model), verbose=args.verbose))
    lines = [*_totals_lines(totals(rows)), f"file: {args.model} {_size(args.model):,} B"]
    for line in lines:
        console.print(line)
    if args.report:
        atomic_write_text(args.report, markdown_report(rows, f"lsc-ort inspect {args.model}", lines), "report")
        console.print(f"report: {args.report}")
    return EXIT_OK


def _verify(args: argparse.Namespace, console: Console) -> int:
    from lsc_ort.rewriter.model_io import load_model
    from lsc_ort.verify import compare_outputs, load_inputs, parse_shapes, random_inputs, run_model

    original = load_model(args.original)
    load_model(args.compressed)  # fail early, with a clear message, on a bad path
    if args.inputs == "random":
        feeds = random_inputs(original, seed=args.seed, shapes=parse_shapes(args.shape))
    else:
        if args.shape:
            raise ValueError("--shape applies to random inputs only")
        feeds = load_inputs(args.inputs, original)
    expected = run_model(args.original, feeds, args.engine)
    actual = run_model(args.compressed, feeds, args.engine)
    diffs = compare_outputs(expected, actual, args.rtol)
    console.print(
        FittedTable(
            VERIFY_COLUMNS,
            diffs,
            title=f"{args.compressed} vs {args.original} ({args.engine}, rtol {args.rtol:g})",
            row_style=lambda diff: None if diff.ok else "bold red",
        )
    )
    inputs = ", ".join(
        f"{name} {'×'.join(map(str, value.shape))} {value.dtype}" for name, value in feeds.items()
    )
    console.print(f"inputs: {inputs}")
    failed = [diff.name for diff in diffs if not diff.ok]
    if failed:
        console.print(
            f"MISMATCH: {len(failed)} of {len(diffs)} output(s) beyond tolerance: {', '.join(failed)}"
        )
        return EXIT_MISMATCH
    console.print(f"OK: {len(diffs)} output(s) within rtol {args.rtol:g}")
    return EXIT_OK


def _decompress(args: argparse.Namespace, console: Console) -> int:
    from lsc_ort.rewriter import decompress_file

    with _progress(console, "decompressing") as progress:
        result = decompress_file(
            args.input, args.output, external_data=_external(args.external_data), progress=progress
        )
    console.print(f"decompressed {result.nodes} node(s), {len(result.weights)} weight(s)")
    console.print(_file_line(args.input, _size(args.input), args.output, _size(args.output)))
    return EXIT_OK


def _prune(args: argparse.Namespace, console: Console) -> int:
    from lsc_ort.pruning import prune_file

    with _progress(console, "pruning") as progress:
        result = prune_file(
            args.input,
            args.output,
            args.sparsity,
            method=args.method,
            ops=args.ops,
            external_data=_external(args.external_data),
            progress=progress,
            block=args.block,
            unify=args.unify,
        )
    if result.weights:
        title = f"{args.output} ({args.method}, sparsity {args.sparsity:g}"
        if args.method == "mswu":
            title += f", unify {args.unify:g}, block {args.block}"
        columns = PRUNE_MSWU_COLUMNS if args.method == "mswu" else PRUNE_COLUMNS
        console.print(FittedTable(columns, result.weights, title=title + ")"))
        console.print(f"pruned {len(result.weights)} weight tensor(s) → {args.output}")
    else:
        console.print(f"nothing pruned: {_why_nothing_to_prune(args.input, args.ops)}; {args.output} is a copy")
    return EXIT_OK


def _tvm_compile(args: argparse.Namespace, console: Console) -> int:
    shapes: dict[str, list[int | str]] = {}
    for text in args.shape:
        name, _, dims = text.partition("=")
        if not name or not dims:
            raise ValueError(f"--shape takes NAME=D0,D1,..., got {text!r}")
        shapes[name] = [int(d) if d.strip().isdigit() else d.strip() for d in dims.split(",")]
    import tvm_schedules  # Apache TVM loads only for this command

    with console.status(f"compiling {args.input} for {args.target}"):
        executable = tvm_schedules.compile(args.input, args.target, shapes or None)
        executable.export_library(args.output)
    attrs = executable.target.attrs
    details = [str(attrs[key]) for key in ("mtriple", "mcpu", "arch") if attrs.get(key)]
    console.print(f"target: {' '.join([executable.target.kind.name, *details])}")
    console.print(_file_line(args.input, _size(args.input), args.output, _size(args.output)))
    return EXIT_OK


def _why_nothing_to_prune(path: str, ops: Sequence[str]) -> str:
    from lsc_ort.ops import CONV_OP, DOMAIN, MATMUL_OP
    from lsc_ort.rewriter.model_io import iter_graphs, load_model

    model = load_model(path)
    encoded = sum(
        node.domain == DOMAIN and node.op_type in (MATMUL_OP, CONV_OP)
        for graph in iter_graphs(model.graph)
        for node in graph.node
    )
    reason = f"no {' / '.join(ops)} node has a constant float weight of rank >= 2"
    if encoded:
        reason += (
            f"; the model is already compressed: the weights of its {encoded} {MATMUL_OP} / {CONV_OP} "
            f"node(s) are encoded blobs (lsc-ort decompress restores standard ops that prune can prune)"
        )
    return reason


def _users(weight: object) -> str:
    """The first node reading a pruned weight (its name, from its label), and how many more."""
    nodes = weight.nodes  # type: ignore[attr-defined]
    named = re.fullmatch(r"node '(.*)' \(\w+\)", nodes[0])
    first = named.group(1) if named else nodes[0]
    return first + (f" +{len(nodes) - 1}" if len(nodes) > 1 else "")


def _zeros(count: int, shape: Sequence[int]) -> str:
    size = math.prod(shape)
    return f"{count / size:.1%}" if size else "-"


def _shape_of(value: object) -> str:
    return shape_text(value.shape)  # type: ignore[attr-defined]


VERIFY_COLUMNS: tuple[Column, ...] = (
    Column("output", lambda i, diff: diff.name, key=True, wrap=True),
    Column("shape", lambda i, diff: _shape_of(diff)),
    Column("max abs", lambda i, diff: f"{diff.max_abs:.3g}", numeric=True),
    Column("max rel", lambda i, diff: f"{diff.max_rel:.3g}", numeric=True),
    Column("", lambda i, diff: ("ok" if diff.ok else "FAIL") + (f" ({diff.note})" if diff.note else ""), wrap=True),
)
"""The table of ``verify``: one row per output (max rel is max |got - ref| / (1 + |ref|))."""

PRUNE_COLUMNS: tuple[Column, ...] = (
    Column("#", lambda i, weight: str(i), numeric=True, key=True),
    Column("weight", lambda i, weight: weight.name, key=True, wrap=True),
    Column("shape", lambda i, weight: _shape_of(weight)),
    Column("used by", lambda i, weight: _users(weight), wrap=True),
    Column("before", lambda i, weight: _zeros(weight.zeros_before, weight.shape), numeric=True),
    Column("after", lambda i, weight: _zeros(weight.zeros_after, weight.shape), numeric=True),
)
"""The table of ``prune``: one row per pruned weight, its sparsity before and after."""

PRUNE_MSWU_COLUMNS: tuple[Column, ...] = (
    *PRUNE_COLUMNS[:4],
    Column("block", lambda i, weight: "×".join(map(str, weight.block or ()))),
    PRUNE_COLUMNS[5],
    Column("unified", lambda i, weight: f"{weight.unified_blocks / weight.blocks:.1%}" if weight.blocks else "-",
           numeric=True),
)
"""The table of ``prune --method mswu``: the block shape (stored weight's matrix view), the zeros
after pruning and the fraction of blocks unified."""


def _demo(args: argparse.Namespace, console: Console) -> int:
    from lsc_ort.demo import DEMO_SPARSITY, build_lenet, demo_paths
    from lsc_ort.native import library_available
    from lsc_ort.rewriter.model_io import save_model

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="lsc-ort-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    paths = demo_paths(workdir)
    console.print(f"[bold]1. build[/bold] a LeNet-5-like model → {paths.dense}")
    save_model(build_lenet(seed=0), paths.dense)
    steps: list[tuple[str, list[str]]] = [
        (
            "2. prune",
            ["prune", str(paths.dense), "-o", str(paths.pruned), "--sparsity", f"{DEMO_SPARSITY:g}"],
        ),
        (
            "3. compress",
            ["compress", str(paths.pruned), "-o", str(paths.compressed), "--report", str(paths.report)]
            + (["-v"] if args.verbose else []),
        ),
    ]
    engine = "onnxruntime" if library_available() else "reference"
    verify = ["verify", str(paths.pruned), str(paths.compressed), "--shape", "image=4,1,28,28"]
    if engine == "reference":
        verify += ["--engine", "reference"]
    steps.append(("4. verify", verify))
    parser = build_parser()
    for title, argv in steps:
        console.print(f"\n[bold]{title}[/bold]: {PROG} {' '.join(argv)}")
        if title == "4. verify" and engine == "reference":
            console.print("(the native library is not built: verifying with the numpy reference ops)")
        code = int(parser.parse_args(argv).func(parser.parse_args(argv), console))
        if code != EXIT_OK:
            return code
    console.print(f"\ndemo files are in {workdir}")
    return EXIT_OK


def find_benchmarks(start: Path | None = None) -> Path | None:
    """The root of a source checkout holding ``benchmarks/`` (the current directory or the one the
    package was installed from in editable mode), or None: the wheel does not ship them."""
    candidates = [Path.cwd() if start is None else start, Path(__file__).resolve().parent.parent]
    for root in candidates:
        if (root / "benchmarks" / "run.py").is_file() and (root / "benchmarks" / "__main__.py").is_file():
            return root
    return None


def _bench(args: argparse.Namespace, console: Console) -> int:
    import subprocess

    root = find_benchmarks()
    if root is None:
        raise ValueError(
            "the benchmarks are not part of the installed package: they live in the benchmarks/ folder of a "
            "source checkout of lsc-ort. Clone the repository, run pip install -e '.[bench]' in it, then "
            "lsc-ort bench (or python -m benchmarks) from its root"
        )
    env = {**os.environ, "LSC_ORT_BENCH_PROG": f"{PROG} bench"}
    command = [sys.executable, "-m", "benchmarks", *args.bench_args]
    return subprocess.run(command, cwd=root, env=env, check=False).returncode


def _bench_args(argv: Sequence[str] | None) -> argparse.Namespace | None:
    """``lsc-ort [--debug] bench ARGS...``: every ARG goes to the benchmarks, --help included
    (argparse's REMAINDER would not pass options through a subcommand)."""
    tokens = list(sys.argv[1:] if argv is None else argv)
    if "bench" not in tokens:
        return None
    head = tokens[: tokens.index("bench")]
    if any(token != "--debug" for token in head):
        return None
    return argparse.Namespace(func=_bench, bench_args=tokens[len(head) + 1 :], debug=bool(head))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lsc-ort`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = _bench_args(argv) or parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse already printed
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_ERROR
    console = _console()
    try:
        return int(args.func(args, console))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
