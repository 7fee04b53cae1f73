// AVX2 + FMA kernels (x86-64; selected at run time).
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/views.h"

#define LSC_AVX2 __attribute__((target("avx2,fma,f16c")))
#define LSC_SWEEP_TARGET LSC_AVX2
#include "kernels/sliced_sweep.h"

namespace lsc {
namespace {

LSC_AVX2 inline __m256i TailMask8(int64_t count) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count < 8 ? count : 8)), lanes);
}

template <int NV>
LSC_AVX2 void Columns(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* base, const int64_t* rows,
                      int64_t batch, float alpha, const float* bias, float* yt, int64_t ldy) {
  const __m256i full = _mm256_set1_epi32(-1), tail = TailMask8(batch - 8 * (NV - 1));
  for (int64_t n = n_begin; n < n_end; ++n) {
    __m256 a[NV], b[NV];
    for (int v = 0; v < NV; ++v) a[v] = b[v] = _mm256_setzero_ps();
    uint64_t i = w.ptr[n];
    const uint64_t end = w.ptr[n + 1];
    for (; i + 2 <= end; i += 2) {
      const float* r0 = base + rows[w.row[i]];
      const float* r1 = base + rows[w.row[i + 1]];
      const __m256 w0 = _mm256_set1_ps(w.value[i]), w1 = _mm256_set1_ps(w.value[i + 1]);
      for (int v = 0; v < NV; ++v) {
        const __m256i m = v == NV - 1 ? tail : full;
        a[v] = _mm256_fmadd_ps(w0, _mm256_maskload_ps(r0 + 8 * v, m), a[v]);
        b[v] = _mm256_fmadd_ps(w1, _mm256_maskload_ps(r1 + 8 * v, m), b[v]);
      }
    }
    if (i < end) {
      const float* r0 = base + rows[w.row[i]];
      const __m256 w0 = _mm256_set1_ps(w.value[i]);
      for (int v = 0; v < NV; ++v) {
        a[v] = _mm256_fmadd_ps(w0, _mm256_maskload_ps(r0 + 8 * v, v == NV - 1 ? tail : full), a[v]);
      }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(bias ? bias[n] : 0.0f);
    float* out = yt + n * ldy;
    for (int v = 0; v < NV; ++v) {
      _mm256_maskstore_ps(out + 8 * v, v == NV - 1 ? tail : full, _mm256_fmadd_ps(va, _mm256_add_ps(a[v], b[v]), vb));
    }
  }
}

}  // namespace

LSC_AVX2 void SpmmTileAvx2(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* base,
                           const int64_t* rows, int64_t batch, float alpha, const float* bias, float* yt, int64_t ldy) {
  switch ((batch + 7) / 8) {
    case 1: return Columns<1>(w, n_begin, n_end, base, rows, batch, alpha, bias, yt, ldy);
    case 2: return Columns<2>(w, n_begin, n_end, base, rows, batch, alpha, bias, yt, ldy);
    case 3: return Columns<3>(w, n_begin, n_end, base, rows, batch, alpha, bias, yt, ldy);
    case 4: return Columns<4>(w, n_begin, n_end, base, rows, batch, alpha, bias, yt, ldy);
    default: return;
  }
}

// ---- tiled layout ------------------------------------------------------------------------

namespace {

LSC_AVX2 inline __m256 ApplyEpilogue8(__m256 sum, __m256 alpha, __m256 beta, bool relu) {
  const __m256 y = _mm256_fmadd_ps(alpha, sum, beta);
  return relu ? _mm256_max_ps(_mm256_setzero_ps(), y) : y;  // NaN stays NaN
}

template <int NV, typename Offset>
LSC_AVX2 void TiledColumns8(const TiledView& w, const Offset* offset, int64_t n_begin, int64_t n_end,
                            const float* base, int64_t batch, const Epilogue& e, float* yt, int64_t ldy) {
  const __m256i full = _mm256_set1_epi32(-1), tail = TailMask8(batch - 8 * (NV - 1));
  const __m256 va = _mm256_set1_ps(e.alpha);
  for (int64_t c0 = n_begin; c0 < n_end; c0 += w.chunk) {
    const int64_t c1 = c0 + w.chunk < n_end ? c0 + w.chunk : n_end;
    for (int64_t b = 0; b < w.blocks; ++b) {
      const uint64_t* start = w.start + b * w.N;
      const int32_t* order = w.column + b * w.N;
      const bool first = b == 0 && !w.accumulate, last = b == w.blocks - 1 && !w.partial;
      for (int64_t i = c0; i < c1; ++i) {
        const int64_t n = order[i];
        float* out = yt + n * ldy;
        __m256 a[NV], c[NV];
        for (int v = 0; v < NV; ++v) {
          a[v] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(out + 8 * v, v == NV - 1 ? tail : full);
          c[v] = _mm256_setzero_ps();
        }
        uint64_t p = start[i];
        const uint64_t end = start[i + 1];
        for (; p + 2 <= end; p += 2) {
          const float* r0 = base + offset[p];
          const float* r1 = base + offset[p + 1];
          const __m256 w0 = _mm256_set1_ps(w.value[p]), w1 = _mm256_set1_ps(w.value[p + 1]);
          for (int v = 0; v < NV; ++v) {
            const __m256i m = v == NV - 1 ? tail : full;
            a[v] = _mm256_fmadd_ps(w0, _mm256_maskload_ps(r0 + 8 * v, m), a[v]);
            c[v] = _mm256_fmadd_ps(w1, _mm256_maskload_ps(r1 + 8 * v, m), c[v]);
          }
        }
        if (p < end) {
          const float* r0 = base + offset[p];
          const __m256 w0 = _mm256_set1_ps(w.value[p]);
          for (int v = 0; v < NV; ++v) {
            a[v] = _mm256_fmadd_ps(w0, _mm256_maskload_ps(r0 + 8 * v, v == NV - 1 ? tail : full), a[v]);
          }
        }
        const __m256 beta = _mm256_set1_ps(e.bias ? e.bias[n] : 0.0f);
        for (int v = 0; v < NV; ++v) {
          const __m256 sum = _mm256_add_ps(a[v], c[v]);
          const __m256i m = v == NV - 1 ? tail : full;
          if (last && e.residual != nullptr) {
            const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(va, sum, beta),
                                           _mm256_maskload_ps(e.residual + n * ldy + 8 * v, m));
            _mm256_maskstore_ps(out + 8 * v, m, e.relu ? _mm256_max_ps(_mm256_setzero_ps(), y) : y);
          } else {
            _mm256_maskstore_ps(out + 8 * v, m, last ? ApplyEpilogue8(sum, va, beta, e.relu) : sum);
          }
        }
      }
    }
  }
}

template <typename Offset>
LSC_AVX2 void TiledDispatch8(const TiledView& w, const Offset* offset, int64_t n_begin, int64_t n_end,
                             const float* base, int64_t batch, const Epilogue& e, float* yt, int64_t ldy) {
  switch ((batch + 7) / 8) {
    case 1: return TiledColumns8<1>(w, offset, n_begin, n_end, base, batch, e, yt, ldy);
    case 2: return TiledColumns8<2>(w, offset, n_begin, n_end, base, batch, e, yt, ldy);
    case 3: return TiledColumns8<3>(w, offset, n_begin, n_end, base, batch, e, yt, ldy);
    case 4: return TiledColumns8<4>(w, offset, n_begin, n_end, base, batch, e, yt, ldy);
    default: return;
  }
}

}  // namespace

LSC_AVX2 void SpmmTiledAvx2(const TiledView& w, int64_t n_begin, int64_t n_end, const float* base, int64_t batch,
                            const Epilogue& e, float* yt, int64_t ldy) {
  if (w.offset16 != nullptr) return TiledDispatch8(w, w.offset16, n_begin, n_end, base, batch, e, yt, ldy);
  return TiledDispatch8(w, w.offset32, n_begin, n_end, base, batch, e, yt, ldy);
}

// ---- sliced layout: two gathers of 8 lanes per round ------------------------------------

namespace {

template <int STEP>
LSC_AVX2 inline __m256i LoadSteps8(const uint8_t* p) {
  if (STEP == 1) return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// 8 values and, as a gather mask, the lanes whose stored bits are not zero.
template <SlicedValue T>
LSC_AVX2 inline __m256 LoadValues8(const uint8_t* p, __m256* mask) {
  __m256i bits;
  __m256 v;
  if (T == SlicedValue::kFloat32) {
    bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    v = _mm256_castsi256_ps(bits);
  } else if (T == SlicedValue::kFloat16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    bits = _mm256_cvtepu16_epi32(h);
    v = _mm256_cvtph_ps(h);
  } else {
    bits = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    v = _mm256_cvtepi32_ps(bits);
  }
  const __m256i zero = _mm256_cmpeq_epi32(bits, _mm256_setzero_si256());
  *mask = _mm256_castsi256_ps(_mm256_xor_si256(zero, _mm256_set1_epi32(-1)));
  return v;
}

// Rounds ahead that the sliced kernel asks for its streams, and groups it reads side by side
// (as in the AVX-512 kernel: more sequential streams in flight stream faster from DRAM). On the
// AVX2 path of a Sapphire Rapids core, 8192 x 8192 at 90% from DRAM: 5.3 ms without either,
// 3.4 ms with the prefetches, 2.7 ms with four groups as well; warm, 1.0-1.2x faster.
constexpr int kPrefetchRounds8 = 48;
constexpr int kSlicedWays8 = 4;

// One sequential reader of a group's rounds, as two halves of 8 lanes.
template <int R, int STEP, SlicedValue T>
struct SlicedCursor8 {
  static constexpr int width = T == SlicedValue::kFloat32 ? 4 : T == SlicedValue::kFloat16 ? 2 : 1;
  const uint8_t* step;
  const uint8_t* value;
  __m256i index[2];
  __m256 acc[R][2];

  LSC_AVX2 inline void Start(const SlicedView& w, int64_t g) {
    const uint64_t round = w.group_start[g];
    step = w.step + round * 16 * STEP;
    value = w.value + round * 16 * width;
    index[0] = index[1] = _mm256_setzero_si256();
    for (int m = 0; m < R; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
  }
  LSC_AVX2 inline void Prefetch() const {
    _mm_prefetch(reinterpret_cast<const char*>(value + kPrefetchRounds8 * 16 * width), _MM_HINT_T0);
    if (width == 4) _mm_prefetch(reinterpret_cast<const char*>(value + kPrefetchRounds8 * 16 * width + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(step + kPrefetchRounds8 * 16 * STEP), _MM_HINT_T0);
  }
  LSC_AVX2 inline void Round(int /*u: one set, as two halves*/, const float* x, int64_t ldx) {
    for (int h = 0; h < 2; ++h) {
      index[h] = _mm256_add_epi32(index[h], LoadSteps8<STEP>(step + 8 * h * STEP));
      __m256 mask;
      const __m256 v = LoadValues8<T>(value + 8 * h * width, &mask);
      for (int m = 0; m < R; ++m) {
        const __m256 a = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), x + m * ldx, index[h], mask, 4);
        acc[m][h] = _mm256_fmadd_ps(v, a, acc[m][h]);
      }
    }
    step += 16 * STEP;
    value += 16 * width;
  }
  LSC_AVX2 inline void Store(const SlicedView& w, int64_t g, const Epilogue& e, float* y, int64_t ldy) const {
    const float alpha = e.alpha * w.scale;
    for (int m = 0; m < R; ++m) {
      float sums[16];
      _mm256_storeu_ps(sums, acc[m][0]);
      _mm256_storeu_ps(sums + 8, acc[m][1]);
      for (int j = 0; j < 16; ++j) {
        const int32_t n = w.column[g * 16 + j];
        if (n < 0) continue;
        const float out = alpha * sums[j] + (e.bias ? e.bias[n] : 0.0f);
        y[m * ldy + n] = e.relu && out < 0.0f ? 0.0f : out;
      }
    }
  }
};

template <int STEP, SlicedValue T>
LSC_AVX2 void Sliced8Rows(const SlicedView& w, int64_t g_begin, int64_t g_end, const float* x, int64_t ldx,
                          int64_t rows, const Epilogue& e, float* y, int64_t ldy) {
  if (rows == 1) return SweepSlicedGroups<kSlicedWays8, SlicedCursor8<1, STEP, T>>(w, g_begin, g_end, x, ldx, e, y, ldy);
  return SweepSlicedGroups<kSlicedWays8, SlicedCursor8<2, STEP, T>>(w, g_begin, g_end, x, ldx, e, y, ldy);
}

template <int STEP>
LSC_AVX2 void Sliced8Value(const SlicedView& w, int64_t g_begin, int64_t g_end, const float* x, int64_t ldx,
                           int64_t rows, const Epilogue& e, float* y, int64_t ldy) {
  switch (w.value_type) {
    case SlicedValue::kFloat32: return Sliced8Rows<STEP, SlicedValue::kFloat32>(w, g_begin, g_end, x, ldx, rows, e, y, ldy);
    case SlicedValue::kFloat16: return Sliced8Rows<STEP, SlicedValue::kFloat16>(w, g_begin, g_end, x, ldx, rows, e, y, ldy);
    case SlicedValue::kInt8: return Sliced8Rows<STEP, SlicedValue::kInt8>(w, g_begin, g_end, x, ldx, rows, e, y, ldy);
  }
}

}  // namespace

LSC_AVX2 void SpmvSlicedAvx2(const SlicedView& w, int64_t g_begin, int64_t g_end, const float* x, int64_t ldx,
                             int64_t rows, const Epilogue& e, float* y, int64_t ldy) {
  if (rows < 1 || rows > kSlicedRows) return;
  if (w.window) return SpmvSlicedScalar(w, g_begin, g_end, x, ldx, rows, e, y, ldy);  // not used on AVX2
  if (w.step_bytes == 1) return Sliced8Value<1>(w, g_begin, g_end, x, ldx, rows, e, y, ldy);
  return Sliced8Value<2>(w, g_begin, g_end, x, ldx, rows, e, y, ldy);
}

namespace {

LSC_AVX2 inline float HorizontalMax(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_max_ss(x, _mm_movehdup_ps(x)));
}

LSC_AVX2 inline float HorizontalSum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}

// exp(x) for x in [-87, 0] (NaN stays NaN): 2^n e^r, |r| <= ln 2 / 2, e^r by its Taylor series to
// r^6 (relative error below 2e-7), 2^n built in the exponent bits (n >= -126: a normal float).
LSC_AVX2 inline __m256 ExpNonPositive8(__m256 x) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);  // ln 2, high and low parts
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

// As the AVX-512 kernel (avx512.cc), 8 lanes to a vector: R query rows x 16 keys per register
// tile (2 vectors, masked by m0 and m1), stored scaled and biased, with each row's running
// maximum in top[r] (masked lanes -inf; a NaN lane keeps top, the sum of exponentials finds it).
template <int R>
LSC_AVX2 inline void ScoreRows8(const AttentionHead& a, int64_t i0, int64_t j0, __m256i m0, __m256i m1, float* s,
                                __m256* top) {
  const int64_t H = a.H, T = a.T;
  const float* q = a.q + i0 * H;
  const float* kh = a.k + j0;
  __m256 acc[R][2];
  _Pragma("GCC unroll 8")
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t h = 0; h < H; ++h, kh += T) {
    const __m256 k0 = _mm256_maskload_ps(kh, m0), k1 = _mm256_maskload_ps(kh + 8, m1);
    _Pragma("GCC unroll 8")
    for (int r = 0; r < R; ++r) {
      const __m256 qb = _mm256_broadcast_ss(q + r * H + h);
      acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
    }
  }
  const __m256 scale = _mm256_set1_ps(a.scale), low = _mm256_set1_ps(-INFINITY);
  _Pragma("GCC unroll 8")
  for (int r = 0; r < R; ++r) {
    float* row = s + r * T + j0;
    __m256 x0 = _mm256_mul_ps(acc[r][0], scale), x1 = _mm256_mul_ps(acc[r][1], scale);
    if (a.bias != nullptr) {
      const float* bias = a.bias + (i0 + r) * a.bias_row;
      if (a.bias_col != 0) {
        x0 = _mm256_add_ps(x0, _mm256_maskload_ps(bias + j0, m0));
        x1 = _mm256_add_ps(x1, _mm256_maskload_ps(bias + j0 + 8, m1));
      } else {
        x0 = _mm256_add_ps(x0, _mm256_set1_ps(*bias));
        x1 = _mm256_add_ps(x1, _mm256_set1_ps(*bias));
      }
    }
    _mm256_maskstore_ps(row, m0, x0);
    _mm256_maskstore_ps(row + 8, m1, x1);
    top[r] = _mm256_max_ps(_mm256_blendv_ps(low, x0, _mm256_castsi256_ps(m0)), top[r]);
    top[r] = _mm256_max_ps(_mm256_blendv_ps(low, x1, _mm256_castsi256_ps(m1)), top[r]);
  }
}

// R output rows, values [d0, d0 + 16) (2 vectors, masked by n0, n1): sum_j p[r][j] v[j], times inv[r].
template <int R>
LSC_AVX2 inline void WeighRows8(const AttentionHead& a, const float* p, const float* inv, int64_t i0, int64_t d0,
                                __m256i n0, __m256i n1) {
  const int64_t T = a.T, Hv = a.Hv;
  __m256 acc[R][2];
  _Pragma("GCC unroll 8")
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  const float* v = a.v + d0;
  for (int64_t j = 0; j < T; ++j, v += Hv) {
    const __m256 v0 = _mm256_maskload_ps(v, n0), v1 = _mm256_maskload_ps(v + 8, n1);
    _Pragma("GCC unroll 8")
    for (int r = 0; r < R; ++r) {
      const __m256 pb = _mm256_broadcast_ss(p + r * T + j);
      acc[r][0] = _mm256_fmadd_ps(pb, v0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(pb, v1, acc[r][1]);
    }
  }
  float* o = a.o + i0 * Hv + d0;
  _Pragma("GCC unroll 8")
  for (int r = 0; r < R; ++r) {
    const __m256 scale = _mm256_set1_ps(inv[r]);
    _mm256_maskstore_ps(o + r * Hv, n0, _mm256_mul_ps(acc[r][0], scale));
    _mm256_maskstore_ps(o + r * Hv + 8, n1, _mm256_mul_ps(acc[r][1], scale));
  }
}

// exp(x - max) in place over a row of T scaled, biased scores (0 below exp(-87)); returns 1 / sum.
LSC_AVX2 inline float ExpRow8(int64_t T, float max, float* s) {
  const __m256 shift = _mm256_set1_ps(max), floor = _mm256_set1_ps(-87.0f);
  __m256 sum = _mm256_setzero_ps();
  for (int64_t j = 0; j < T; j += 8) {
    const __m256i m = TailMask8(T - j);
    const __m256 x = _mm256_sub_ps(_mm256_maskload_ps(s + j, m), shift);
    const __m256 kept = _mm256_and_ps(_mm256_cmp_ps(x, floor, _CMP_NLT_UQ), _mm256_castsi256_ps(m));  // NaN kept
    const __m256 e = _mm256_and_ps(kept, ExpNonPositive8(_mm256_max_ps(floor, x)));  // (NaN: x)
    _mm256_maskstore_ps(s + j, m, e);
    sum = _mm256_add_ps(sum, e);
  }
  return 1.0f / HorizontalSum(sum);
}

}  // namespace

LSC_AVX2 void AttentionRowsAvx2(const AttentionHead& a, int64_t r0, int64_t rows, float* scores) {
  for (int64_t r = 0; r < rows; r += 6) {
    const int64_t count = std::min<int64_t>(6, rows - r);
    float* s = scores + r * a.T;
    __m256 top[6];
    for (int t = 0; t < 6; ++t) top[t] = _mm256_set1_ps(-INFINITY);
    for (int64_t j0 = 0; j0 < a.T; j0 += 16) {
      const __m256i m0 = TailMask8(a.T - j0), m1 = TailMask8(std::max<int64_t>(a.T - j0 - 8, 0));
      int64_t t = 0;
      for (; t + 6 <= count; t += 6) ScoreRows8<6>(a, r0 + r + t, j0, m0, m1, s + t * a.T, top + t);
      for (; t + 3 <= count; t += 3) ScoreRows8<3>(a, r0 + r + t, j0, m0, m1, s + t * a.T, top + t);
      for (; t < count; ++t) ScoreRows8<1>(a, r0 + r + t, j0, m0, m1, s + t * a.T, top + t);
    }
    float inv[6];
    for (int64_t t = 0; t < count; ++t) inv[t] = ExpRow8(a.T, HorizontalMax(top[t]), s + t * a.T);
    for (int64_t d0 = 0; d0 < a.Hv; d0 += 16) {
      const __m256i n0 = TailMask8(a.Hv - d0), n1 = TailMask8(std::max<int64_t>(a.Hv - d0 - 8, 0));
      switch (count) {
        case 6: WeighRows8<6>(a, s, inv, r0 + r, d0, n0, n1); break;
        case 5: WeighRows8<5>(a, s, inv, r0 + r, d0, n0, n1); break;
        case 4: WeighRows8<4>(a, s, inv, r0 + r, d0, n0, n1); break;
        case 3: WeighRows8<3>(a, s, inv, r0 + r, d0, n0, n1); break;
        case 2: WeighRows8<2>(a, s, inv, r0 + r, d0, n0, n1); break;
        default: WeighRows8<1>(a, s, inv, r0 + r, d0, n0, n1); break;
      }
    }
  }
}

}  // namespace lsc
#endif
