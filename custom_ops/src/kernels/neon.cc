// NEON kernels (aarch64, where NEON is always present).
#if defined(__aarch64__)
#include <arm_neon.h>

#include "kernels/views.h"

namespace lsc {

void SpmmTileNeon(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* base, const int64_t* rows,
                  int64_t batch, float alpha, const float* bias, float* yt, int64_t ldy) {
  const int64_t full = batch / 4 * 4;
  for (int64_t n = n_begin; n < n_end; ++n) {
    float32x4_t acc[16];
    float rest[4] = {0, 0, 0, 0};
    for (int v = 0; v < 16; ++v) acc[v] = vdupq_n_f32(0.0f);
    for (uint64_t i = w.ptr[n]; i < w.ptr[n + 1]; ++i) {
      const float* row = base + rows[w.row[i]];
      const float value = w.value[i];
      int64_t b = 0;
      for (int v = 0; b < full; ++v, b += 4) acc[v] = vfmaq_n_f32(acc[v], vld1q_f32(row + b), value);
      for (; b < batch; ++b) rest[b - full] += value * row[b];
    }
    const float beta = bias ? bias[n] : 0.0f;
    float* out = yt + n * ldy;
    int64_t b = 0;
    for (int v = 0; b < full; ++v, b += 4) {
      vst1q_f32(out + b, vaddq_f32(vmulq_n_f32(acc[v], alpha), vdupq_n_f32(beta)));
    }
    for (; b < batch; ++b) out[b] = alpha * rest[b - full] + beta;
  }
}

}  // namespace lsc
#endif
