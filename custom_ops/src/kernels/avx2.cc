// AVX2 + FMA kernels (x86-64; selected at run time).
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "kernels/views.h"

#define LSC_AVX2 __attribute__((target("avx2,fma")))

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

}  // namespace lsc
#endif
