// AVX2 + FMA kernels (x86-64; selected at run time).
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "kernels/views.h"

#define LSC_AVX2 __attribute__((target("avx2,fma,f16c")))

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

template <int NV>
LSC_AVX2 void TiledColumns8(const TiledView& w, int64_t n_begin, int64_t n_end, const float* base, int64_t batch,
                            const Epilogue& e, float* yt, int64_t ldy) {
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
        const TiledEntry* p = w.entry + start[i];
        const TiledEntry* const end = w.entry + start[i + 1];
        for (; end - p >= 2; p += 2) {  // (p + 2 could step past the end, or off a null entry array)
          const float* r0 = Row(base, p[0].offset);
          const float* r1 = Row(base, p[1].offset);
          const __m256 w0 = _mm256_set1_ps(p[0].value), w1 = _mm256_set1_ps(p[1].value);
          for (int v = 0; v < NV; ++v) {
            const __m256i m = v == NV - 1 ? tail : full;
            a[v] = _mm256_fmadd_ps(w0, _mm256_maskload_ps(r0 + 8 * v, m), a[v]);
            c[v] = _mm256_fmadd_ps(w1, _mm256_maskload_ps(r1 + 8 * v, m), c[v]);
          }
        }
        if (p < end) {
          const float* r0 = Row(base, p->offset);
          const __m256 w0 = _mm256_set1_ps(p->value);
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

}  // namespace

LSC_AVX2 void SpmmTiledAvx2(const TiledView& w, int64_t n_begin, int64_t n_end, const float* base, int64_t batch,
                            const Epilogue& e, float* yt, int64_t ldy) {
  switch ((batch + 7) / 8) {
    case 1: return TiledColumns8<1>(w, n_begin, n_end, base, batch, e, yt, ldy);
    case 2: return TiledColumns8<2>(w, n_begin, n_end, base, batch, e, yt, ldy);
    case 3: return TiledColumns8<3>(w, n_begin, n_end, base, batch, e, yt, ldy);
    case 4: return TiledColumns8<4>(w, n_begin, n_end, base, batch, e, yt, ldy);
    default: return;
  }
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

template <int R, int STEP, SlicedValue T>
LSC_AVX2 void SlicedRows8(const SlicedView& w, int64_t g_begin, int64_t g_end, const float* x, int64_t ldx,
                          const Epilogue& e, float* y, int64_t ldy) {
  constexpr int width = T == SlicedValue::kFloat32 ? 4 : T == SlicedValue::kFloat16 ? 2 : 1;
  const float alpha = e.alpha * w.scale;
  for (int64_t g = g_begin; g < g_end; ++g) {
    const uint64_t begin = w.group_start[g], end = w.group_start[g + 1];
    __m256i index[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    __m256 acc[R][2];
    for (int m = 0; m < R; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
    for (uint64_t r = begin; r < end; ++r) {
      for (int h = 0; h < 2; ++h) {
        const uint64_t slot = r * 16 + 8 * static_cast<uint64_t>(h);
        index[h] = _mm256_add_epi32(index[h], LoadSteps8<STEP>(w.step + slot * STEP));
        __m256 mask;
        const __m256 v = LoadValues8<T>(w.value + slot * width, &mask);
        for (int m = 0; m < R; ++m) {
          const __m256 a = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), x + m * ldx, index[h], mask, 4);
          acc[m][h] = _mm256_fmadd_ps(v, a, acc[m][h]);
        }
      }
    }
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
}

template <int STEP, SlicedValue T>
LSC_AVX2 void Sliced8Rows(const SlicedView& w, int64_t g_begin, int64_t g_end, const float* x, int64_t ldx,
                          int64_t rows, const Epilogue& e, float* y, int64_t ldy) {
  if (rows == 1) return SlicedRows8<1, STEP, T>(w, g_begin, g_end, x, ldx, e, y, ldy);
  return SlicedRows8<2, STEP, T>(w, g_begin, g_end, x, ldx, e, y, ldy);
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
  if (w.step_bytes == 1) return Sliced8Value<1>(w, g_begin, g_end, x, ldx, rows, e, y, ldy);
  return Sliced8Value<2>(w, g_begin, g_end, x, ldx, rows, e, y, ldy);
}

}  // namespace lsc
#endif
