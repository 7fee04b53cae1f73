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

// Per-ISA kernels (kernels/<isa>.cc).
void SpmmTileAvx512(const ColumnView&, int64_t, int64_t, const float*, const int64_t*, int64_t, float,
                    const float*, float*, int64_t);
void SpmvWindowedAvx512(const WindowedView&, int64_t, int64_t, const float*, int64_t, int64_t, float, const float*,
                        float*, int64_t);
void TransposeAvx512(const float*, int64_t, int64_t, int64_t, float*, int64_t);
void SpmmTileAvx2(const ColumnView&, int64_t, int64_t, const float*, const int64_t*, int64_t, float,
                    const float*, float*, int64_t);
void SpmmTileNeon(const ColumnView&, int64_t, int64_t, const float*, const int64_t*, int64_t, float,
                    const float*, float*, int64_t);

}  // namespace lsc
