// NEON kernels (aarch64, where NEON is always present).
#if defined(__aarch64__)
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>

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

// 64 lanes in 16 vectors of 4; one offset and one value per non-zero.
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
        WithTiledOffsets(w, [&](const auto* offset) {
          for (uint64_t i = start[i0]; i < start[i0 + 1]; ++i) {
            const float* row = base + offset[i];
            const float value = w.value[i];
            int64_t j = 0;
            for (int v = 0; j < full; ++v, j += 4) acc[v] = vfmaq_n_f32(acc[v], vld1q_f32(row + j), value);
            for (; j < batch; ++j) rest[j - full] += value * row[j];
          }
        });
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

namespace {

// exp(x) for x in [-87, 0] (NaN stays NaN), as the x86 variants: 2^n e^r, e^r to r^6, 2^n in the
// exponent bits (n >= -126).
inline float32x4_t ExpNonPositive4(float32x4_t x) {
  const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693145751953125f));
  r = vfmsq_f32(r, n, vdupq_n_f32(1.428606765330187e-06f));
  float32x4_t p = vdupq_n_f32(1.0f / 720);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  const int32x4_t bits = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(bits));
}

// Lanes c * 4 .. c * 4 + 3 that lie below `width`, as an all-ones mask.
inline uint32x4_t LanesBelow(int64_t width, int c) {
  const uint32x4_t lane = {0, 1, 2, 3};
  return vcltq_u32(vaddq_u32(lane, vdupq_n_u32(static_cast<uint32_t>(4 * c))),
                   vdupq_n_u32(static_cast<uint32_t>(width)));
}

// R query rows x 16 keys from j0 (`width` of them present, a shorter tail read through a padded
// copy), stored scaled and biased, with each row's running maximum in top[r] (a NaN takes it:
// the row is NaN then).
template <int R>
inline void ScoreRows4(const AttentionHead& a, int64_t i0, int64_t j0, int64_t width, float* s, float32x4_t* top) {
  const int64_t H = a.H, T = a.T;
  float32x4_t acc[R][4];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < 4; ++c) acc[r][c] = vdupq_n_f32(0.0f);
  }
  float pad[16] = {};
  for (int64_t h = 0; h < H; ++h) {
    const float* kh = a.k + h * T + j0;
    if (width < 16) {
      std::memcpy(pad, kh, static_cast<size_t>(width) * sizeof(float));
      kh = pad;
    }
    const float32x4_t k0 = vld1q_f32(kh), k1 = vld1q_f32(kh + 4), k2 = vld1q_f32(kh + 8), k3 = vld1q_f32(kh + 12);
    for (int r = 0; r < R; ++r) {
      const float qh = a.q[(i0 + r) * H + h];
      acc[r][0] = vfmaq_n_f32(acc[r][0], k0, qh);
      acc[r][1] = vfmaq_n_f32(acc[r][1], k1, qh);
      acc[r][2] = vfmaq_n_f32(acc[r][2], k2, qh);
      acc[r][3] = vfmaq_n_f32(acc[r][3], k3, qh);
    }
  }
  for (int r = 0; r < R; ++r) {
    float out[16], bias[16];
    const float* b = a.bias ? a.bias + (i0 + r) * a.bias_row : nullptr;
    for (int64_t c = 0; c < 16; ++c) bias[c] = b && c < width ? b[(j0 + c) * a.bias_col] : 0.0f;
    for (int c = 0; c < 4; ++c) {
      const float32x4_t x = vaddq_f32(vmulq_n_f32(acc[r][c], a.scale), vld1q_f32(bias + 4 * c));
      vst1q_f32(out + 4 * c, x);
      top[r] = vmaxq_f32(top[r], vbslq_f32(LanesBelow(width, c), x, vdupq_n_f32(-INFINITY)));
    }
    std::memcpy(s + r * T + j0, out, static_cast<size_t>(width) * sizeof(float));
  }
}

// R output rows x 16 values from d0 (`width` of them present): sum_j p[r][j] v[j], times inv[r].
template <int R>
inline void WeighRows4(const AttentionHead& a, const float* p, const float* inv, int64_t i0, int64_t d0,
                       int64_t width) {
  const int64_t T = a.T, Hv = a.Hv;
  float32x4_t acc[R][4];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < 4; ++c) acc[r][c] = vdupq_n_f32(0.0f);
  }
  float pad[16] = {};
  for (int64_t j = 0; j < T; ++j) {
    const float* vj = a.v + j * Hv + d0;
    if (width < 16) {
      std::memcpy(pad, vj, static_cast<size_t>(width) * sizeof(float));
      vj = pad;
    }
    const float32x4_t v0 = vld1q_f32(vj), v1 = vld1q_f32(vj + 4), v2 = vld1q_f32(vj + 8), v3 = vld1q_f32(vj + 12);
    for (int r = 0; r < R; ++r) {
      const float pj = p[r * T + j];
      acc[r][0] = vfmaq_n_f32(acc[r][0], v0, pj);
      acc[r][1] = vfmaq_n_f32(acc[r][1], v1, pj);
      acc[r][2] = vfmaq_n_f32(acc[r][2], v2, pj);
      acc[r][3] = vfmaq_n_f32(acc[r][3], v3, pj);
    }
  }
  for (int r = 0; r < R; ++r) {
    float out[16];
    for (int c = 0; c < 4; ++c) vst1q_f32(out + 4 * c, vmulq_n_f32(acc[r][c], inv[r]));
    std::memcpy(a.o + (i0 + r) * Hv + d0, out, static_cast<size_t>(width) * sizeof(float));
  }
}

// exp(x - max) in place over a row of T scores (0 below exp(-87)); returns 1 / sum.
inline float ExpRow4(int64_t T, float max, float* s) {
  const float32x4_t shift = vdupq_n_f32(max), floor = vdupq_n_f32(-87.0f);
  float32x4_t sum = vdupq_n_f32(0.0f);
  for (int64_t j = 0; j < T; j += 4) {
    const int64_t width = std::min<int64_t>(4, T - j);
    float x4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    std::memcpy(x4, s + j, static_cast<size_t>(width) * sizeof(float));
    const float32x4_t x = vsubq_f32(vld1q_f32(x4), shift);
    const uint32x4_t kept = vandq_u32(vmvnq_u32(vcltq_f32(x, floor)), LanesBelow(width, 0));  // NaN kept
    const float32x4_t e = vbslq_f32(kept, ExpNonPositive4(vmaxq_f32(floor, x)), vdupq_n_f32(0.0f));
    vst1q_f32(x4, e);
    std::memcpy(s + j, x4, static_cast<size_t>(width) * sizeof(float));
    sum = vaddq_f32(sum, e);
  }
  return 1.0f / vaddvq_f32(sum);
}

}  // namespace

// As the AVX-512 kernel (avx512.cc), 4 lanes to a vector: blocks of 4 rows, scores in tiles of
// 4 rows x 16 keys, exp in place, values in tiles of 4 rows x 16.
void AttentionRowsNeon(const AttentionHead& a, int64_t r0, int64_t rows, float* scores) {
  for (int64_t r = 0; r < rows; r += 4) {
    const int64_t count = std::min<int64_t>(4, rows - r);
    float* s = scores + r * a.T;
    float32x4_t top[4];
    for (int t = 0; t < 4; ++t) top[t] = vdupq_n_f32(-INFINITY);
    for (int64_t j0 = 0; j0 < a.T; j0 += 16) {
      const int64_t width = std::min<int64_t>(16, a.T - j0);
      if (count == 4) {
        ScoreRows4<4>(a, r0 + r, j0, width, s, top);
      } else {
        for (int64_t t = 0; t < count; ++t) ScoreRows4<1>(a, r0 + r + t, j0, width, s + t * a.T, top + t);
      }
    }
    float inv[4];
    for (int64_t t = 0; t < count; ++t) inv[t] = ExpRow4(a.T, vmaxvq_f32(top[t]), s + t * a.T);
    for (int64_t d0 = 0; d0 < a.Hv; d0 += 16) {
      const int64_t width = std::min<int64_t>(16, a.Hv - d0);
      if (count == 4) {
        WeighRows4<4>(a, s, inv, r0 + r, d0, width);
      } else {
        for (int64_t t = 0; t < count; ++t) WeighRows4<1>(a, s + t * a.T, inv + t, r0 + r + t, d0, width);
      }
    }
  }
}

}  // namespace lsc
#endif
