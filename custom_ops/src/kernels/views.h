// Plain-pointer views of the execution layouts and the kernel signatures. SIMD kernel files
// include only this header: they are compiled with function-level target attributes and must
// not instantiate any standard-library template (an instantiation compiled for AVX-512 could be
// the one the linker keeps for every caller).
#pragma once

#include <cstdint>

namespace lsc {

// Plain-pointer views of the layouts (kernels/layouts.h). SIMD kernels see only these: they are
// compiled with function-level target attributes and must not instantiate any library template.
struct ColumnView {
  int64_t K, N;
  const uint64_t* ptr;  // N + 1
  const uint32_t* row;
  const float* value;
};

struct WindowedView {
  int lanes, window;
  int64_t K, N, groups, windows;
  const uint8_t* rounds;        // groups x windows
  const uint64_t* group_start;  // groups + 1
  const uint8_t* offset;        // rounds x lanes
  const float* value;           // rounds x lanes
};

// Tiled layout (kernels/tiled_layout.h) for batches and convolutions: the non-zeros of each
// output column, split into K-blocks (block-major), each as the element offset of its activation
// row from the tile's base and its value, in two parallel arrays. Offsets are 16 bits wide when
// every one fits (MatMul tiles and gathered convolutions, whose K-blocks span at most 48 KiB of
// activations): 6 bytes per non-zero, and the AVX-512 kernel reads four offsets with one load.
// Otherwise (a convolution's virtual positions) they are 32 bits wide.
// Columns come in chunks of `chunk` (the last may be shorter): the kernel sweeps every K-block for
// one chunk before the next, so the chunk's output tile stays in L1 while each K-block's
// activation rows are read from L2 once per chunk. Within a chunk and K-block, columns are
// processed by decreasing number of entries, so the inner loop's trip counts repeat.
//
// A view may also hold some of a layout's K-blocks (TiledLayout::blocks_view): `accumulate`
// then adds its first block to the partial sums already in yt, and `partial` leaves its last
// block's sums in yt without the epilogue, so a caller can run the K-blocks one by one.
struct TiledView {
  int64_t N, blocks, chunk;
  const uint64_t* start;   // blocks * N + 1: first entry of the i-th column processed in block b
                           // at start[b * N + i]
  const int32_t* column;   // blocks * N: that column
  const float* value;      // nnz, in processing order
  const uint16_t* offset16;  // nnz element offsets when they all fit in 16 bits, else null
  const int32_t* offset32;   // nnz element offsets otherwise, else null
  bool accumulate = false;  // the first block adds to yt (else starts from zero)
  bool partial = false;     // the last block stores plain sums (else applies the epilogue)
};

// Calls fn(offsets) with the view's offset array, uint16_t* or int32_t*, so that a kernel is
// compiled once per offset width. The AVX2 and AVX-512 kernels test offset16 themselves: a
// lambda would not inherit their target attribute, and its intrinsics would not compile.
template <typename Fn>
inline void WithTiledOffsets(const TiledView& w, Fn&& fn) {
  if (w.offset16 != nullptr) return fn(w.offset16);
  return fn(w.offset32);
}

// What a kernel applies when it writes an output: y = alpha * sum + bias[n] (+ the residual at
// the output's own index, for the tiled kernel), then max(y, 0) (NaN kept) when relu.
struct Epilogue {
  float alpha;
  const float* bias;  // may be null
  bool relu;
  const float* residual = nullptr;  // tiled kernel: residual[n * ldy + b] added before relu
};

// For the columns n at processing positions [i_begin, i_end) (whole chunks) and lanes
// b < batch (batch <= KernelSet::tiled_tile):
//   yt[n * ldy + b] = epilogue(sum over the column's entries of value * base[offset + b])
// chunk by chunk, and K-block by K-block within a chunk, yt holding the partial sums. Only stored
// non-zeros are multiplied.
using SpmmTiledFn = void (*)(const TiledView& w, int64_t i_begin, int64_t i_end, const float* base, int64_t batch,
                             const Epilogue& epilogue, float* yt, int64_t ldy);

// Sliced layout (kernels/sliced_layout.h) for one or two activation rows: columns sorted by
// their non-zero count and dealt 16 at a time into groups; in each group, round r holds the r-th
// non-zero of each of the 16 columns as a row step (8- or 16-bit) and a value at its stored width.
// A lane whose value is zero (padding, or an escape for a step too long) contributes nothing.
//
// With `window` (windowed slices, for CPUs whose gathers are slow) a round reads one window of
// kSlicedWindow consecutive rows instead: it starts `window[r]` rows after the previous round's
// window (the first after row 0), and each lane's 8-bit `step` is its row's offset within it,
// or kIdleLane for a lane that takes nothing. Only the taken lanes have values: a round's values
// follow the previous round's, in lane order, and group g's start at value_start[g] (in values;
// 64 zero bytes pad the stream, so a kernel may read a whole round's width past any of them).
// Windows lie within the K rows when K >= kSlicedWindow (x needs kSlicedWindow floats per row
// otherwise, zero past K).
enum class SlicedValue : int32_t { kFloat32 = 0, kFloat16 = 1, kInt8 = 2 };
struct SlicedView {
  int64_t K, N, groups;
  int32_t step_bytes;           // 1 or 2
  SlicedValue value_type;
  float scale;                  // int8 values: value = scale * q
  const uint64_t* group_start;  // groups + 1: first round of each group
  const int32_t* column;        // groups x 16: output column of each lane, -1 for none
  const uint8_t* step;          // rounds x 16 steps of step_bytes (windowed: offsets in the window)
  const uint8_t* value;         // rounds x 16 values of the stored width
  const uint16_t* window = nullptr;       // windowed slices: rounds advances of the window; else null
  const uint64_t* value_start = nullptr;  // windowed slices: groups + 1
};
constexpr int kSlicedLanes = 16;
constexpr int kSlicedRows = 2;
constexpr int kSlicedWindow = 32;
constexpr uint8_t kIdleLane = 0x80;

// For rows r < rows (<= kSlicedRows) and the columns of groups [g_begin, g_end):
//   y[r * ldy + n] = epilogue(sum_k W[k, n] * x[r * ldx + k]).
using SpmvSlicedFn = void (*)(const SlicedView& w, int64_t g_begin, int64_t g_end, const float* x, int64_t ldx,
                              int64_t rows, const Epilogue& epilogue, float* y, int64_t ldy);

// Yt[n * ldy + b] = alpha * sum_k W[k, n] * base[row[k] + b] + bias[n]   (bias may be null)
// for n in [n_begin, n_end) and b in [0, batch), batch <= KernelSet::batch_tile. Row k of the
// activations starts at base + row[k]: k * lda for a transposed activation tile, the offset of
// tap (c, i, j) in the padded, stride-phase-split input image for a direct convolution.
using SpmmTileFn = void (*)(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* base,
                            const int64_t* row, int64_t batch, float alpha, const float* bias, float* yt,
                            int64_t ldy);

// For rows r < rows (at most kWindowedRows): y[r * ldy + n] = alpha * sum_k W[k, n] * x[r * ldx + k]
// + bias[n] for the columns of groups [g_begin, g_end) of a windowed layout. Each row of `x`
// holds windows * window floats (zero beyond K).
constexpr int kWindowedRows = 8;
using SpmvWindowedFn = void (*)(const WindowedView& w, int64_t g_begin, int64_t g_end, const float* x, int64_t ldx,
                                int64_t rows, float alpha, const float* bias, float* y, int64_t ldy);

// Same as SpmvWindowedFn on column lists, for columns [n_begin, n_end).
using SpmvColumnsFn = void (*)(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* x, float alpha,
                               const float* bias, float* y);

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols.
using TransposeFn = void (*)(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd);

// The input reads of a gathered convolution tile (lsc_conv.cc, gathered tiles): lane q < lanes
// reads lane_offset[q] from a row's start; the same offsets as runs of consecutive lanes,
// lane_offset[run.lane + t] = run.offset + stride * t for t < run.count. lane_offset may be null
// (runs only, any number of lanes); given, it has lanes <= 128 entries.
struct GatherRun {
  int32_t lane, count, offset;
};
struct GatherView {
  int64_t lanes;
  const int32_t* lane_offset;
  const GatherRun* runs;
  int64_t run_count, stride;
};

// Gathers the activation rows of one K-block of a convolution tile:
//   dst[r * ldd + q] = src[row_offset[r] + lane_offset[q]]   for r < rows, q < lanes
// (lanes beyond are left as they are).
using GatherFn = void (*)(const float* src, const int64_t* row_offset, int64_t rows, const GatherView& view,
                          float* dst, int64_t ldd);

// y[i] = Gelu(y[i]) = y[i] / 2 * (1 + erf(y[i] / sqrt(2))) for i < count (ONNX Gelu, approximate
// "none"; NaN stays NaN, Gelu(-inf) is NaN as 0.5 * x * (1 + erf) gives).
using GeluFn = void (*)(float* y, int64_t count);

// Each of `rows` rows of `n` floats at y + r * n normalized in place as ONNX LayerNormalization
// (axis -1): (x - mean) / sqrt(var + epsilon) * scale + bias, var the biased variance of the row
// (two passes; float32 sums in the SIMD variants); `bias` may be null.
using LayerNormFn = void (*)(float* y, int64_t rows, int64_t n, const float* scale, const float* bias, float epsilon);

// One head of LSCAttention (lsc_ort/ops.py): queries q [S, H], keys k [H, T] (transposed, as
// Q @ K reads them), values v [T, Hv], all row-major, and the output o [S, Hv]. The optional
// additive bias of query row i is bias + i * bias_row, its element j at j * bias_col (0: one
// value for the row, or 1).
struct AttentionHead {
  const float* q;
  const float* k;
  const float* v;
  const float* bias;
  int64_t bias_row, bias_col;
  int64_t S, T, H, Hv;
  float scale;
  float* o;
};

// Rows [r0, r0 + rows) of one head: o[i] = softmax_j(scale * q[i] . k[:, j] + bias[i, j]) v.
// `scores` holds rows * T floats of scratch. The softmax subtracts the row's maximum; terms
// below exp(-87) of it are dropped (no denormals), a NaN makes its row NaN, and so does a row
// whose maximum is infinite (as softmax in onnxruntime). T > 0.
using AttentionRowsFn = void (*)(const AttentionHead& head, int64_t r0, int64_t rows, float* scores);

// Per-ISA kernels (kernels/<isa>.cc).
void AttentionRowsScalar(const AttentionHead&, int64_t, int64_t, float*);
void AttentionRowsAvx512(const AttentionHead&, int64_t, int64_t, float*);
void AttentionRowsAvx2(const AttentionHead&, int64_t, int64_t, float*);
void AttentionRowsNeon(const AttentionHead&, int64_t, int64_t, float*);
void GeluScalar(float*, int64_t);
void GeluAvx512(float*, int64_t);
void LayerNormScalar(float*, int64_t, int64_t, const float*, const float*, float);
void LayerNormAvx512(float*, int64_t, int64_t, const float*, const float*, float);
void GatherScalar(const float*, const int64_t*, int64_t, const GatherView&, float*, int64_t);
void GatherAvx512(const float*, const int64_t*, int64_t, const GatherView&, float*, int64_t);
void SpmmTiledScalar(const TiledView&, int64_t, int64_t, const float*, int64_t, const Epilogue&, float*, int64_t);
void SpmvSlicedScalar(const SlicedView&, int64_t, int64_t, const float*, int64_t, int64_t, const Epilogue&, float*,
                      int64_t);
void SpmmTiledAvx512(const TiledView&, int64_t, int64_t, const float*, int64_t, const Epilogue&, float*, int64_t);
void SpmvSlicedAvx512(const SlicedView&, int64_t, int64_t, const float*, int64_t, int64_t, const Epilogue&, float*,
                      int64_t);
void SpmmTiledAvx2(const TiledView&, int64_t, int64_t, const float*, int64_t, const Epilogue&, float*, int64_t);
void SpmvSlicedAvx2(const SlicedView&, int64_t, int64_t, const float*, int64_t, int64_t, const Epilogue&, float*,
                    int64_t);
void SpmmTiledNeon(const TiledView&, int64_t, int64_t, const float*, int64_t, const Epilogue&, float*, int64_t);
void SpmmTileAvx512(const ColumnView&, int64_t, int64_t, const float*, const int64_t*, int64_t, float,
                    const float*, float*, int64_t);
void SpmvWindowedAvx512(const WindowedView&, int64_t, int64_t, const float*, int64_t, int64_t, float, const float*,
                        float*, int64_t);
void TransposeAvx512(const float*, int64_t, int64_t, int64_t, float*, int64_t);
void SpmmTileAvx2(const ColumnView&, int64_t, int64_t, const float*, const int64_t*, int64_t, float,
                    const float*, float*, int64_t);
void SpmmTileNeon(const ColumnView&, int64_t, int64_t, const float*, const int64_t*, int64_t, float,
                    const float*, float*, int64_t);

// Whether the CPU is AMD's (or Hygon's): gathers issue a load per lane there, and vector shuffles
// run on other pipes than the FMAs. Read once (kernels.cc).
bool CpuVendorIsAmd();

}  // namespace lsc
