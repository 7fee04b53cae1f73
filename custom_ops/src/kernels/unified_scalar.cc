// Portable unified-block kernels: the fallback on every CPU and the reference for SIMD variants.
#include "kernels/unified_views.h"

namespace lsc {

void SignedSumsRowsScalar(const SignedSumView& s, int64_t e_begin, int64_t e_end, const float* a, int64_t lda,
                          int64_t rows, float* t, int64_t ldt) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = a + r * lda;
    float* out = t + r * ldt - e_begin;
    for (int64_t e = e_begin; e < e_end; ++e) {
      const float* in = x + s.first[e];
      const uint64_t signs = s.signs[e];
      float sum = 0.0f;
      for (uint32_t i = 0; i < s.length[e]; ++i) sum += (signs >> i & 1) ? -in[i] : in[i];
      out[e] = sum;
    }
  }
}

void SpmvAccumulateScalar(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* t, int64_t ldt,
                          int64_t rows, float alpha, float* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = t + r * ldt;
    for (int64_t n = n_begin; n < n_end; ++n) {
      float a0 = 0, a1 = 0;
      uint64_t i = w.ptr[n];
      const uint64_t end = w.ptr[n + 1];
      for (; i + 2 <= end; i += 2) {
        a0 += w.value[i] * x[w.row[i]];
        a1 += w.value[i + 1] * x[w.row[i + 1]];
      }
      if (i < end) a0 += w.value[i] * x[w.row[i]];
      y[r * ldy + n] += alpha * (a0 + a1);
    }
  }
}

void AccumulateTileScalar(const ColumnView& w, int64_t n_begin, int64_t n_end, uint64_t* cursor, uint32_t row_end,
                          const float* t, int64_t ldt, uint32_t row_base, int64_t batch, float alpha, float* yt,
                          int64_t ldy) {
  float acc[64];
  for (int64_t n = n_begin; n < n_end; ++n) {
    for (int64_t b = 0; b < batch; ++b) acc[b] = 0.0f;
    uint64_t i = cursor[n];
    const uint64_t end = w.ptr[n + 1];
    for (; i < end && w.row[i] < row_end; ++i) {
      const float v = w.value[i];
      const float* row = t + static_cast<int64_t>(w.row[i] - row_base) * ldt;
      for (int64_t b = 0; b < batch; ++b) acc[b] += v * row[b];
    }
    cursor[n] = i;
    float* out = yt + n * ldy;
    for (int64_t b = 0; b < batch; ++b) out[b] += alpha * acc[b];
  }
}

}  // namespace lsc
