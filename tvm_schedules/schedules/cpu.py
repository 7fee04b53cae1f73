"""The CPU kernel templates, scheduled by the ``llvm`` rules (x86, aarch64, generic) through
:class:`CpuSchedule`, and, unscheduled, the portable reference every LSC node imports as.

**LSCMatMul** picks its loop nest by the run-time row count ``M``:

* ``M = 1``: the row is copied beside a zero slot; each group of 16 columns runs its rounds,
  16 gathered activations times 16 stored values in one vector multiply-add; groups run in
  parallel.
* larger ``M``: rows are tiled by a tile chosen by ``M`` (``m_tiles``: short batches get short
  tiles and waste little, long ones long tiles and read the weight fewer times). Each tile is
  transposed once into ``At [K, tile]`` (``lanes x lanes`` blocks of register shuffles).
  Then, in parallel over (tile, group) and
  :data:`~tvm_schedules.layouts.ROW_BLOCK` rows of ``At`` at a time (so that they stay in
  cache), each column's entries broadcast their value over a row of ``At`` into ``tile``
  vector accumulators, kept in a column-major ``Yt``. A last pass writes
  ``Y = alpha * Yt + bias`` in row-major order and the original column order.

**LSCConv** pads the input once into a workspace, then, in parallel over (image, output row,
run of ``width_tile`` output pixels), accumulates every output channel's entries over the run
(one vector multiply-add per entry, the input read at stride ``stride_w``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tvm import tirx
from tvm.script import tirx as T

from tvm_schedules.kernels import ConvKernel, MatMulKernel, kernel_function
from tvm_schedules.layouts import LANES


@dataclass(frozen=True)
class CpuSchedule:
    """The knobs of the CPU templates."""

    parallel: bool = True
    """Run the outer loops on TVM's thread pool."""
    vectorize: bool = True
    """Vectorise the lane, row-tile and pixel loops (LLVM splits them into the target's registers)."""
    m_tiles: tuple[tuple[int, int], ...] = ((48, 16), (0, 64))
    """``(up to rows, tile)`` pairs: batches of at most ``rows`` rows (0: any) use row tiles of
    ``tile`` rows, i.e. ``tile`` float accumulators per column; the first pair that fits wins."""
    width_tile: int = 16
    """Output pixels per conv accumulator run."""
    lanes: int = 16
    """Floats per vector loop: longer accumulator loops are unrolled runs of ``lanes``-wide
    vector loops (LLVM maps them onto registers of the target's width)."""


REFERENCE = CpuSchedule(parallel=False, vectorize=False)
"""The portable, unscheduled form: serial loops."""


def _loops(schedule: CpuSchedule) -> tuple[object, object, int]:
    """The outer loop kind, the vector loop kind and the vector width in floats."""
    lanes = schedule.lanes if schedule.vectorize else 1
    return (T.parallel if schedule.parallel else T.serial, T.vectorized if schedule.vectorize else T.serial, lanes)


@functools.lru_cache(maxsize=256)
def matmul(spec: MatMulKernel, schedule: CpuSchedule) -> tirx.PrimFunc:
    """The LSCMatMul kernel of ``spec`` for a CPU, scheduled by ``schedule``."""
    K, N, L = spec.k, spec.n, LANES
    G, NP = spec.groups, spec.padded_columns
    NKB = spec.row_blocks
    KZ = K + 1
    alpha = T.float32(spec.alpha)
    loop, vec, VL = _loops(schedule)
    tiers = schedule.m_tiles
    SHUFFLE = schedule.vectorize and VL > 1  # transposes as register shuffles (else scalar loops)
    K0 = K // VL * VL if SHUFFLE else 0  # columns of A transposed in VL x VL blocks
    N0 = N // VL * VL if SHUFFLE else 0
    KB, NBV = K0 // VL, N0 // VL

    @T.macro
    def batched(A, Y, M, gptr, rows, vals, blocks, inverse, bias, TM):
        MT = T.meta_var((M + TM - 1) // TM)
        At = T.alloc_buffer((MT * K * TM,), "float32")
        Yt = T.alloc_buffer((NP * MT * TM,), "float32")
        # rows past M repeat row M - 1: their results are never stored
        if KB > 0:  # VL x VL blocks: VL row loads, VL shuffles, VL column stores
            for t in loop(MT * KB):
                mt = T.meta_var(t // KB)
                kv = T.meta_var(t % KB * VL)
                for ib in range(TM // VL):
                    for c in T.unroll(VL):
                        At[T.ramp((mt * K + kv + c) * TM + ib * VL, 1, VL)] = T.Shuffle(
                            [A[T.min(mt * TM + ib * VL + r, M - 1), T.ramp(kv, 1, VL)] for r in range(VL)],
                            [r * VL + c for r in range(VL)])
        if K0 < K:
            for t in loop(MT * (K - K0)):
                mt = T.meta_var(t // (K - K0))
                k = T.meta_var(K0 + t % (K - K0))
                for i0 in T.unroll(TM // VL):
                    for i1 in vec(VL):
                        At[(mt * K + k) * TM + i0 * VL + i1] = A[T.min(mt * TM + i0 * VL + i1, M - 1), k]
        # row block by row block, so that a block of At stays in cache across all columns
        for kb in range(NKB):
            for t in loop(MT * G):
                mt = T.meta_var(t // G)
                g = T.meta_var(t % G)
                acc = T.alloc_buffer((TM,), "float32")
                for lane in range(L):
                    c = T.meta_var(g * L + lane)
                    for i0 in T.unroll(TM // VL):
                        for i1 in vec(VL):
                            acc[i0 * VL + i1] = T.if_then_else(
                                kb == 0, T.float32(0), Yt[(c * MT + mt) * TM + i0 * VL + i1])
                    for r in range(gptr[g] + blocks[c, kb], gptr[g] + blocks[c, kb + 1]):
                        for i0 in T.unroll(TM // VL):
                            for i1 in vec(VL):
                                acc[i0 * VL + i1] = acc[i0 * VL + i1] + vals[r, lane] * At[
                                    (mt * K + rows[r, lane]) * TM + i0 * VL + i1]
                    for i0 in T.unroll(TM // VL):
                        for i1 in vec(VL):
                            Yt[(c * MT + mt) * TM + i0 * VL + i1] = acc[i0 * VL + i1]
        if NBV > 0:  # VL x VL blocks back: VL column loads of Yt, VL shuffles, VL row stores of Y
            for t in loop(MT * NBV):
                mt = T.meta_var(t // NBV)
                nv = T.meta_var(t % NBV * VL)
                for ib in range(TM // VL):
                    for r in T.unroll(VL):
                        if ib * VL + r < M - mt * TM:
                            Y[mt * TM + ib * VL + r, T.ramp(nv, 1, VL)] = T.Broadcast(alpha, VL) * T.Shuffle(
                                [Yt[T.ramp((inverse[nv + j] * MT + mt) * TM + ib * VL, 1, VL)] for j in range(VL)],
                                [j * VL + r for j in range(VL)]) + bias[T.ramp(nv, 1, VL)]
        if N0 < N:
            for t in loop(MT * (N - N0)):
                mt = T.meta_var(t // (N - N0))
                c = T.meta_var(N0 + t % (N - N0))
                for i in range(T.min(TM, M - mt * TM)):
                    Y[mt * TM + i, c] = alpha * Yt[(inverse[c] * MT + mt) * TM + i] + bias[c]

    def tier_macro(index: int):  # if M <= rows_0: tile_0 elif M <= rows_1: tile_1 ... else: last
        limit, tile = tiers[index]
        if index == len(tiers) - 1 or limit <= 0:

            @T.macro
            def last(A, Y, M, gptr, rows, vals, blocks, inverse, bias):
                batched(A, Y, M, gptr, rows, vals, blocks, inverse, bias, tile)

            return last
        rest = tier_macro(index + 1)

        @T.macro
        def choose(A, Y, M, gptr, rows, vals, blocks, inverse, bias):
            if M <= limit:
                batched(A, Y, M, gptr, rows, vals, blocks, inverse, bias, tile)
            else:
                rest(A, Y, M, gptr, rows, vals, blocks, inverse, bias)

        return choose

    tier = tier_macro(0)

    @T.prim_func(private=True)
    def kernel(a: T.handle, gptr: T.Buffer((G + 1,), "int32"), rows_h: T.handle,
               vals_h: T.handle, counts: T.Buffer((NP,), "int32"),
               perm: T.Buffer((NP,), "int32"), inverse: T.Buffer((N,), "int32"),
               blocks: T.Buffer((NP, NKB + 1), "int32"), bias: T.Buffer((N,), "float32"), y: T.handle):
        M = T.int32()
        R = T.int32()
        A = T.match_buffer(a, (M, K), "float32")
        rows = T.match_buffer(rows_h, (R, L), "int32")
        vals = T.match_buffer(vals_h, (R, L), "float32")
        Y = T.match_buffer(y, (M, N), "float32")
        if M <= 1:
            x = T.alloc_buffer((KZ,), "float32")
            for m in range(M):
                for k in vec(K):
                    x[k] = A[m, k]
                x[K] = T.float32(0)
                for g in loop(G):
                    acc = T.alloc_buffer((L,), "float32")
                    for lane in vec(L):
                        acc[lane] = T.float32(0)
                    for r in range(gptr[g], gptr[g + 1]):
                        for l0 in T.unroll(L // VL):
                            for l1 in vec(VL):
                                acc[l0 * VL + l1] = acc[l0 * VL + l1] + vals[r, l0 * VL + l1] * x[rows[r, l0 * VL + l1]]
                    for lane in range(L):
                        if g * L + lane < N:
                            Y[m, perm[g * L + lane]] = alpha * acc[lane] + bias[perm[g * L + lane]]
        else:
            tier(A, Y, M, gptr, rows, vals, blocks, inverse, bias)

    return kernel_function(kernel, spec)


@functools.lru_cache(maxsize=256)
def conv(spec: ConvKernel, schedule: CpuSchedule) -> tirx.PrimFunc:
    """The LSCConv kernel of ``spec`` for a CPU, scheduled by ``schedule``."""
    C, MO, L = spec.channels, spec.out_channels, LANES
    G, NP = spec.groups, spec.padded_columns
    NKB = spec.row_blocks
    CG, MG = C // spec.group, MO // spec.group
    KH, KW = spec.kernel
    SH, SW = spec.strides
    DH, DW = spec.dilations
    PT, PL, PB, PR = spec.pads
    KK = KH * KW
    TW = schedule.width_tile
    loop, vec, _ = _loops(schedule)

    @T.prim_func(private=True)
    def kernel(x: T.handle, gptr: T.Buffer((G + 1,), "int32"), rows_h: T.handle,
               vals_h: T.handle, counts: T.Buffer((NP,), "int32"),
               perm: T.Buffer((NP,), "int32"), inverse: T.Buffer((MO,), "int32"),
               blocks: T.Buffer((NP, NKB + 1), "int32"), bias: T.Buffer((MO,), "float32"), y: T.handle):
        B = T.int32()
        H = T.int32()
        W = T.int32()
        OH = T.int32()
        OW = T.int32()
        R = T.int32()
        X = T.match_buffer(x, (B, C, H, W), "float32")
        rows = T.match_buffer(rows_h, (R, L), "int32")
        vals = T.match_buffer(vals_h, (R, L), "float32")
        Y = T.match_buffer(y, (B, MO, OH, OW), "float32")
        NW = T.meta_var((OW + TW - 1) // TW)
        HP = T.meta_var(H + PT + PB)
        WP = T.meta_var(T.max(W + PL + PR, (NW * TW - 1) * SW + (KW - 1) * DW + 1))
        XP = T.alloc_buffer((B * C * HP * WP,), "float32")
        offsets = T.alloc_buffer((R * L,), "int32")
        for t in loop(B * C * HP):
            row = T.meta_var(t % HP - PT)
            for w in range(WP):
                XP[t * WP + w] = T.if_then_else(
                    0 <= row and row < H and PL <= w and w < W + PL,
                    X[t // (C * HP), t // HP % C, T.max(T.min(row, H - 1), 0), T.max(T.min(w - PL, W - 1), 0)],
                    T.float32(0))
        # where each entry's tap (group channel, ky, kx) reads, relative to its image and pixel
        for g in loop(G):
            for r in range(gptr[g], gptr[g + 1]):
                for lane in range(L):
                    tap = T.meta_var(rows[r, lane] % KK)
                    channel = T.meta_var(perm[g * L + lane] // MG * CG + T.min(rows[r, lane] // KK, CG - 1))
                    offsets[r * L + lane] = (channel * HP + tap // KW * DH) * WP + tap % KW * DW
        for t in loop(B * OH * NW):
            image = T.meta_var(t // (OH * NW))
            oh = T.meta_var(t // NW % OH)
            w0 = T.meta_var(t % NW * TW)
            base = T.meta_var((image * C * HP + oh * SH) * WP + w0 * SW)
            acc = T.alloc_buffer((TW,), "float32")
            for g in range(G):
                for lane in range(L):
                    if g * L + lane < MO:
                        for w in vec(TW):
                            acc[w] = T.float32(0)
                        for r in range(gptr[g], gptr[g] + counts[g * L + lane]):
                            for w in vec(TW):
                                acc[w] = acc[w] + vals[r, lane] * XP[base + offsets[r * L + lane] + w * SW]
                        for w in range(T.min(TW, OW - w0)):
                            Y[image, perm[g * L + lane], oh, w0 + w] = acc[w] + bias[perm[g * L + lane]]

    return kernel_function(kernel, spec)
