"""CUDA (``cuda`` kind): one thread per output column (LSCMatMul) or per output pixel and
channel lane (LSCConv), thread blocks over column blocks and row tiles, the activation tile
staged in shared memory.

**LSCMatMul**: a block of 128 threads owns 128 sorted columns (8 groups of 16: a warp reads a
round's 16 lanes as one coalesced 64-byte segment) and ``rows_per_block`` rows of A. The block
first copies those rows, with a zero slot, into shared memory; each thread then walks its
column's entries, reading activations from shared memory into ``rows_per_block`` register
accumulators. When a row of A is too long for shared memory the rows are read from global
memory instead.

**LSCConv**: a block computes a run of 32 output pixels of one output row for all output
channels; threads ``(x, y)`` are (pixel, channel lane). The input rows the run reads, for all
channels and kernel rows, are staged in shared memory with the padding filled in (zeros) when
they fit, else read from global memory with bounds checks.
"""

from __future__ import annotations

import functools

from tvm import tirx
from tvm.script import tirx as T
from tvm.target import Target

from tvm_schedules.kernels import ConvKernel, MatMulKernel, kernel_function
from tvm_schedules.layouts import LANES
from tvm_schedules.schedules.base import LscRule

THREADS = 128
"""Threads per block of the LSCMatMul kernel: 8 groups of 16 columns."""
SHARED_FLOATS = 12 * 1024
"""Floats of activation staged per block (48 KB, the static shared-memory limit)."""
CONV_PIXELS, CONV_LANES = 32, 8


@functools.lru_cache(maxsize=256)
def matmul(spec: MatMulKernel) -> tirx.PrimFunc:
    """The LSCMatMul kernel of ``spec`` for CUDA."""
    K, N, L = spec.k, spec.n, LANES
    G, NP = spec.groups, spec.padded_columns
    NKB = spec.row_blocks
    KZ = K + 1
    alpha = T.float32(spec.alpha)
    RB = max(1, min(8, SHARED_FLOATS // KZ))
    staged = SHARED_FLOATS // KZ >= 1
    BLOCKS = -(-NP // THREADS)
    SMEM = RB * KZ if staged else 1

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
        for by in T.thread_binding((M + RB - 1) // RB, thread="blockIdx.y"):
            for bx in T.thread_binding(BLOCKS, thread="blockIdx.x"):
                for tx in T.thread_binding(THREADS, thread="threadIdx.x"):
                    xs = T.alloc_buffer((SMEM,), "float32", scope="shared")
                    acc = T.alloc_buffer((RB,), "float32", scope="local")
                    if staged:
                        for step in range((RB * KZ + THREADS - 1) // THREADS):
                            e = T.meta_var(step * THREADS + tx)
                            if e < RB * KZ:
                                xs[e] = T.if_then_else(
                                    e % KZ < K and by * RB + e // KZ < M,
                                    A[T.min(by * RB + e // KZ, M - 1), T.min(e % KZ, K - 1)],
                                    T.float32(0))
                        T.tvm_storage_sync("shared")
                    c = T.meta_var(bx * THREADS + tx)
                    for i in T.unroll(RB):
                        acc[i] = T.float32(0)
                    if c < NP:
                        for r in range(gptr[c // L], gptr[c // L] + counts[c]):
                            for i in T.unroll(RB):
                                if staged:
                                    acc[i] = acc[i] + vals[r, c % L] * xs[i * KZ + rows[r, c % L]]
                                else:
                                    acc[i] = acc[i] + vals[r, c % L] * A[
                                        T.min(by * RB + i, M - 1), rows[r, c % L]]
                        if c < N:
                            for i in T.unroll(RB):
                                if by * RB + i < M:
                                    Y[by * RB + i, perm[c]] = alpha * acc[i] + bias[perm[c]]

    return kernel_function(kernel, spec)


@functools.lru_cache(maxsize=256)
def conv(spec: ConvKernel) -> tirx.PrimFunc:
    """The LSCConv kernel of ``spec`` for CUDA."""
    C, MO, L = spec.channels, spec.out_channels, LANES
    G, NP = spec.groups, spec.padded_columns
    NKB = spec.row_blocks
    CG, MG = C // spec.group, MO // spec.group
    KH, KW = spec.kernel
    SH, SW = spec.strides
    DH, DW = spec.dilations
    PT, PL = spec.pads[0], spec.pads[1]
    KK = KH * KW
    TW, TY = CONV_PIXELS, CONV_LANES
    SPAN = (TW - 1) * SW + (KW - 1) * DW + 1
    TILE = C * KH * SPAN
    staged = TILE <= SHARED_FLOATS
    SMEM = TILE if staged else 1
    STEPS = -(-TILE // (TW * TY))

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
        for bx in T.thread_binding(B * OH * NW, thread="blockIdx.x"):
            for ty in T.thread_binding(TY, thread="threadIdx.y"):
                for tx in T.thread_binding(TW, thread="threadIdx.x"):
                    image = T.meta_var(bx // (OH * NW))
                    oh = T.meta_var(bx // NW % OH)
                    w0 = T.meta_var(bx % NW * TW)
                    tile = T.alloc_buffer((SMEM,), "float32", scope="shared")
                    acc = T.alloc_buffer((1,), "float32", scope="local")
                    if staged:
                        # tile[(ci * KH + ky) * SPAN + s] = padded input (ci, oh*SH + ky*DH - PT, w0*SW + s - PL)
                        for step in range(STEPS):
                            e = T.meta_var(step * TW * TY + ty * TW + tx)
                            if e < TILE:
                                ih = T.meta_var(oh * SH + e // SPAN % KH * DH - PT)
                                iw = T.meta_var(w0 * SW + e % SPAN - PL)
                                tile[e] = T.if_then_else(
                                    0 <= ih and ih < H and 0 <= iw and iw < W,
                                    X[image, e // (SPAN * KH), T.max(T.min(ih, H - 1), 0),
                                      T.max(T.min(iw, W - 1), 0)],
                                    T.float32(0))
                        T.tvm_storage_sync("shared")
                    for step in range((NP + TY - 1) // TY):
                        c = T.meta_var(step * TY + ty)
                        if c < MO and w0 + tx < OW:
                            acc[0] = T.float32(0)
                            for r in range(gptr[c // L], gptr[c // L] + counts[c]):
                                tap = T.meta_var(rows[r, c % L] % KK)
                                ci = T.meta_var(perm[c] // MG * CG + rows[r, c % L] // KK)
                                if staged:
                                    acc[0] = acc[0] + vals[r, c % L] * tile[
                                        (ci * KH + tap // KW) * SPAN + tap % KW * DW + tx * SW]
                                else:
                                    ih = T.meta_var(oh * SH + tap // KW * DH - PT)
                                    iw = T.meta_var((w0 + tx) * SW + tap % KW * DW - PL)
                                    acc[0] = acc[0] + T.if_then_else(
                                        0 <= ih and ih < H and 0 <= iw and iw < W,
                                        vals[r, c % L] * X[image, ci, T.max(T.min(ih, H - 1), 0),
                                                           T.max(T.min(iw, W - 1), 0)],
                                        T.float32(0))
                            Y[image, perm[c], oh, w0 + tx] = acc[0] + bias[perm[c]]

    return kernel_function(kernel, spec)


class Cuda(LscRule):
    name = "cuda"

    def is_target_available(self, target: Target) -> bool:
        return target.kind.name == "cuda"

    def matmul(self, spec: MatMulKernel, target: Target) -> tirx.PrimFunc:
        return matmul(spec)

    def conv(self, spec: ConvKernel, target: Target) -> tirx.PrimFunc:
        return conv(spec)
