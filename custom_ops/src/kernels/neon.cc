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

namespace lsc {

// 64 lanes in 16 vectors of 4; one record (offset, value) per non-zero.
void SpmmTiledNeon(const TiledView& w, int64_t n_begin, int64_t n_end, const float* base, int64_t batch,
                   const Epilogue& e, float* yt, int64_t ldy) {
  const int64_t full = batch / 4 * 4;
  for (int64_t c0 = n_begin; c0 < n_end; c0 += w.chunk) {
    const int64_t c1 = c0 + w.chunk < n_end ? c0 + w.chunk : n_end;
    for (int64_t b = 0; b < w.blocks; ++b) {
      const uint64_t* start = w.start + b * w.N;
      const int32_t* order = w.column + b * w.N;
      const bool first = b == 0 && !w.accumulate, last = b == w.blocks - 1 && !w.partial;
      for (int64_t i0 = c0; i0 < c1; ++i0) {
        const int64_t n = order[i0];
        float* out = yt + n * ldy;
        float32x4_t acc[16];
        float rest[4] = {0, 0, 0, 0};
        int64_t l = 0;
        for (int v = 0; l < full; ++v, l += 4) acc[v] = first ? vdupq_n_f32(0.0f) : vld1q_f32(out + l);
        for (; l < batch; ++l) rest[l - full] = first ? 0.0f : out[l];
        for (uint64_t i = start[i0]; i < start[i0 + 1]; ++i) {
          const float* row = Row(base, w.entry[i].offset);
          const float value = w.entry[i].value;
          l = 0;
          for (int v = 0; l < full; ++v, l += 4) acc[v] = vfmaq_n_f32(acc[v], vld1q_f32(row + l), value);
          for (; l < batch; ++l) rest[l - full] += value * row[l];
        }
        const float beta = e.bias ? e.bias[n] : 0.0f;
        const float32x4_t vb = vdupq_n_f32(beta), zero = vdupq_n_f32(0.0f);
        const float* residual = e.residual ? e.residual + n * ldy : nullptr;
        l = 0;
        for (int v = 0; l < full; ++v, l += 4) {
          float32x4_t y = acc[v];
          if (last) {
            y = vfmaq_n_f32(vb, y, e.alpha);
            if (residual) y = vaddq_f32(y, vld1q_f32(residual + l));
            if (e.relu) y = vbslq_f32(vcltq_f32(y, zero), zero, y);  // NaN stays NaN
          }
          vst1q_f32(out + l, y);
        }
        for (; l < batch; ++l) {
          float y = rest[l - full];
          if (last) {
            y = e.alpha * y + beta + (residual ? residual[l] : 0.0f);
            if (e.relu && y < 0.0f) y = 0.0f;
          }
          out[l] = y;
        }
      }
    }
  }
}

}  // namespace lsc
#endif
