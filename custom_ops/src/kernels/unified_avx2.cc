// AVX2 + FMA unified-block kernels (x86-64; chosen with the AVX2 KernelSet).
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "kernels/unified_views.h"

#define LSC_AVX2 __attribute__((target("avx2,fma")))

namespace lsc {
namespace {

LSC_AVX2 inline __m256i TailMask8(int64_t count) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count < 8 ? count : 8)), lanes);
}

}  // namespace

// 8 sums at a time, as the AVX-512 variant. Needs first + length < 2^31 (the callers check).
LSC_AVX2 void SignedSumsRowsAvx2(const SignedSumView& s, int64_t e_begin, int64_t e_end, const float* a,
                                 int64_t lda, int64_t rows, float* t, int64_t ldt) {
  const __m256i sign_bit = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  for (int64_t e0 = e_begin; e0 < e_end; e0 += 8) {
    const int64_t count = e_end - e0 < 8 ? e_end - e0 : 8;
    const __m256i lanes = TailMask8(count);
    alignas(32) uint32_t lo[8] = {0}, hi[8] = {0}, first[8] = {0}, length[8] = {0};
    uint32_t longest = 0;
    for (int64_t j = 0; j < count; ++j) {
      lo[j] = static_cast<uint32_t>(s.signs[e0 + j]);
      hi[j] = static_cast<uint32_t>(s.signs[e0 + j] >> 32);
      first[j] = s.first[e0 + j];
      length[j] = s.length[e0 + j];
      longest = length[j] > longest ? length[j] : longest;
    }
    const __m256i vfirst = _mm256_load_si256(reinterpret_cast<const __m256i*>(first));
    const __m256i vlength = _mm256_load_si256(reinterpret_cast<const __m256i*>(length));
    const __m256i sign_lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo));
    const __m256i sign_hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi));
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = a + r * lda;
      __m256 sum = _mm256_setzero_ps();
      for (uint32_t i = 0; i < longest; ++i) {
        const __m256i active = _mm256_cmpgt_epi32(vlength, _mm256_set1_epi32(static_cast<int>(i)));
        const __m256i index = _mm256_add_epi32(vfirst, _mm256_set1_epi32(static_cast<int>(i)));
        const __m256 v = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), x, index, _mm256_castsi256_ps(active), 4);
        const __m256i bit = _mm256_set1_epi32(static_cast<int>(1u << (i & 31)));
        const __m256i tested = _mm256_and_si256(i < 32 ? sign_lo : sign_hi, bit);
        const __m256i negative = _mm256_cmpeq_epi32(tested, bit);
        sum = _mm256_add_ps(sum, _mm256_xor_ps(v, _mm256_castsi256_ps(_mm256_and_si256(negative, sign_bit))));
      }
      _mm256_maskstore_ps(t + r * ldt + (e0 - e_begin), lanes, sum);
    }
  }
}

namespace {

template <int NV>
LSC_AVX2 void Accumulate(const ColumnView& w, int64_t n_begin, int64_t n_end, uint64_t* cursor, uint32_t row_end,
                         const float* t, int64_t ldt, uint32_t row_base, int64_t batch, float alpha, float* yt,
                         int64_t ldy) {
  const __m256i full = _mm256_set1_epi32(-1), tail = TailMask8(batch - 8 * (NV - 1));
  for (int64_t n = n_begin; n < n_end; ++n) {
    __m256 acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = _mm256_setzero_ps();
    uint64_t i = cursor[n];
    const uint64_t end = w.ptr[n + 1];
    for (; i < end && w.row[i] < row_end; ++i) {
      const float* row = t + static_cast<int64_t>(w.row[i] - row_base) * ldt;
      const __m256 value = _mm256_set1_ps(w.value[i]);
      for (int v = 0; v < NV; ++v) {
        acc[v] = _mm256_fmadd_ps(value, _mm256_maskload_ps(row + 8 * v, v == NV - 1 ? tail : full), acc[v]);
      }
    }
    cursor[n] = i;
    const __m256 va = _mm256_set1_ps(alpha);
    float* out = yt + n * ldy;
    for (int v = 0; v < NV; ++v) {
      const __m256i m = v == NV - 1 ? tail : full;
      _mm256_maskstore_ps(out + 8 * v, m, _mm256_fmadd_ps(va, acc[v], _mm256_maskload_ps(out + 8 * v, m)));
    }
  }
}

}  // namespace

namespace {

LSC_AVX2 inline float HorizontalSum(__m256 v) {
  const __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
  return _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
}

template <int R>
LSC_AVX2 void SpmvRows(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* t, int64_t ldt,
                       float alpha, float* y, int64_t ldy) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    const uint64_t begin = w.ptr[n], end = w.ptr[n + 1];
    for (uint64_t i = begin; i < end; i += 8) {
      const __m256i m = TailMask8(static_cast<int64_t>(end - i));
      const __m256i index = _mm256_maskload_epi32(reinterpret_cast<const int*>(w.row + i), m);
      const __m256 value = _mm256_maskload_ps(w.value + i, m);
      for (int r = 0; r < R; ++r) {
        const __m256 x = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), t + r * ldt, index, _mm256_castsi256_ps(m), 4);
        acc[r] = _mm256_fmadd_ps(x, value, acc[r]);
      }
    }
    for (int r = 0; r < R; ++r) y[r * ldy + n] += alpha * HorizontalSum(acc[r]);
  }
}

}  // namespace

LSC_AVX2 void SpmvAccumulateAvx2(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* t, int64_t ldt,
                                 int64_t rows, float alpha, float* y, int64_t ldy) {
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    const float* tr = t + r0 * ldt;
    float* yr = y + r0 * ldy;
    switch (rows - r0 < 4 ? rows - r0 : 4) {
      case 1: SpmvRows<1>(w, n_begin, n_end, tr, ldt, alpha, yr, ldy); break;
      case 2: SpmvRows<2>(w, n_begin, n_end, tr, ldt, alpha, yr, ldy); break;
      case 3: SpmvRows<3>(w, n_begin, n_end, tr, ldt, alpha, yr, ldy); break;
      default: SpmvRows<4>(w, n_begin, n_end, tr, ldt, alpha, yr, ldy); break;
    }
  }
}

LSC_AVX2 void AccumulateTileAvx2(const ColumnView& w, int64_t n_begin, int64_t n_end, uint64_t* cursor,
                                 uint32_t row_end, const float* t, int64_t ldt, uint32_t row_base, int64_t batch,
                                 float alpha, float* yt, int64_t ldy) {
  switch ((batch + 7) / 8) {
    case 1: return Accumulate<1>(w, n_begin, n_end, cursor, row_end, t, ldt, row_base, batch, alpha, yt, ldy);
    case 2: return Accumulate<2>(w, n_begin, n_end, cursor, row_end, t, ldt, row_base, batch, alpha, yt, ldy);
    case 3: return Accumulate<3>(w, n_begin, n_end, cursor, row_end, t, ldt, row_base, batch, alpha, yt, ldy);
    case 4: return Accumulate<4>(w, n_begin, n_end, cursor, row_end, t, ldt, row_base, batch, alpha, yt, ldy);
    case 5: return Accumulate<5>(w, n_begin, n_end, cursor, row_end, t, ldt, row_base, batch, alpha, yt, ldy);
    case 6: return Accumulate<6>(w, n_begin, n_end, cursor, row_end, t, ldt, row_base, batch, alpha, yt, ldy);
    case 7: return Accumulate<7>(w, n_begin, n_end, cursor, row_end, t, ldt, row_base, batch, alpha, yt, ldy);
    case 8: return Accumulate<8>(w, n_begin, n_end, cursor, row_end, t, ldt, row_base, batch, alpha, yt, ldy);
    default: return;
  }
}

}  // namespace lsc
#endif
