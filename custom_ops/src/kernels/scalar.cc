// Portable kernels: the fallback on every CPU and the reference for the SIMD variants.
#include <algorithm>

#include "kernels/kernels.h"

namespace lsc {

void SpmmTileScalar(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* base, const int64_t* rows,
                    int64_t batch, float alpha, const float* bias, float* yt, int64_t ldy) {
  float acc[64];
  for (int64_t n = n_begin; n < n_end; ++n) {
    std::fill(acc, acc + batch, 0.0f);
    for (uint64_t i = w.ptr[n]; i < w.ptr[n + 1]; ++i) {
      const float v = w.value[i];
      const float* row = base + rows[w.row[i]];
      for (int64_t b = 0; b < batch; ++b) acc[b] += v * row[b];
    }
    const float beta = bias ? bias[n] : 0.0f;
    float* out = yt + n * ldy;
    for (int64_t b = 0; b < batch; ++b) out[b] = alpha * acc[b] + beta;
  }
}

void SpmvColumnsScalar(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* x, float alpha,
                       const float* bias, float* y) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    uint64_t i = w.ptr[n];
    const uint64_t end = w.ptr[n + 1];
    for (; i + 4 <= end; i += 4) {
      a0 += w.value[i] * x[w.row[i]];
      a1 += w.value[i + 1] * x[w.row[i + 1]];
      a2 += w.value[i + 2] * x[w.row[i + 2]];
      a3 += w.value[i + 3] * x[w.row[i + 3]];
    }
    for (; i < end; ++i) a0 += w.value[i] * x[w.row[i]];
    y[n] = alpha * ((a0 + a1) + (a2 + a3)) + (bias ? bias[n] : 0.0f);
  }
}

void TransposeScalar(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  constexpr int64_t kTile = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) dst[c * ldd + r] = src[r * lds + c];
      }
    }
  }
}

}  // namespace lsc
