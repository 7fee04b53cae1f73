// AVX-512 unified-block kernels (x86-64 with AVX512F/BW/VL/DQ; chosen with the AVX-512 KernelSet).
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "kernels/unified_views.h"

#define LSC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

namespace lsc {
namespace {

LSC_AVX512 inline __mmask16 TailMask(int64_t count) {
  return count >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << count) - 1);
}

}  // namespace

// 16 sums at a time: input i of every sum is gathered into one register, negated where its sign
// bit is set, and added. Needs first + length < 2^31 (the callers check).
LSC_AVX512 void SignedSumsRowsAvx512(const SignedSumView& s, int64_t e_begin, int64_t e_end, const float* a,
                                     int64_t lda, int64_t rows, float* t, int64_t ldt) {
  for (int64_t e0 = e_begin; e0 < e_end; e0 += 16) {
    const int64_t count = e_end - e0 < 16 ? e_end - e0 : 16;
    const __mmask16 lanes = TailMask(count);
    alignas(64) uint32_t lo[16] = {0}, hi[16] = {0};
    uint32_t longest = 0;
    for (int64_t j = 0; j < count; ++j) {
      lo[j] = static_cast<uint32_t>(s.signs[e0 + j]);
      hi[j] = static_cast<uint32_t>(s.signs[e0 + j] >> 32);
      longest = s.length[e0 + j] > longest ? s.length[e0 + j] : longest;
    }
    const __m512i first = _mm512_maskz_loadu_epi32(lanes, s.first + e0);
    const __m512i length = _mm512_maskz_loadu_epi32(lanes, s.length + e0);
    const __m512i sign_lo = _mm512_load_si512(lo), sign_hi = _mm512_load_si512(hi);
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = a + r * lda;
      __m512 sum = _mm512_setzero_ps();
      for (uint32_t i = 0; i < longest; ++i) {
        const __mmask16 active = _mm512_mask_cmpgt_epu32_mask(lanes, length, _mm512_set1_epi32(static_cast<int>(i)));
        const __m512i index = _mm512_add_epi32(first, _mm512_set1_epi32(static_cast<int>(i)));
        const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), active, index, x, 4);
        const __m512i bit = _mm512_set1_epi32(static_cast<int>(1u << (i & 31)));
        const __mmask16 negative = _mm512_test_epi32_mask(i < 32 ? sign_lo : sign_hi, bit) & active;
        sum = _mm512_add_ps(sum, _mm512_mask_sub_ps(v, negative, _mm512_setzero_ps(), v));
      }
      _mm512_mask_storeu_ps(t + r * ldt + (e0 - e_begin), lanes, sum);
    }
  }
}

namespace {

// One output column: NV vectors of 16 batch lanes, accumulated in U independent sets.
template <int NV, int U>
LSC_AVX512 inline void AccumulateColumn(const ColumnView& w, uint64_t begin, uint64_t end, const float* t, int64_t ldt,
                                        uint32_t row_base, __mmask16 tail, float alpha, float* out) {
  __m512 acc[U][NV];
  for (int u = 0; u < U; ++u) {
    for (int v = 0; v < NV; ++v) acc[u][v] = _mm512_setzero_ps();
  }
  uint64_t i = begin;
  for (; i + U <= end; i += U) {
    for (int u = 0; u < U; ++u) {
      const float* row = t + static_cast<int64_t>(w.row[i + u] - row_base) * ldt;
      const __m512 value = _mm512_set1_ps(w.value[i + u]);
      for (int v = 0; v < NV; ++v) {
        const __mmask16 m = v == NV - 1 ? tail : static_cast<__mmask16>(0xFFFF);
        acc[u][v] = _mm512_fmadd_ps(value, _mm512_maskz_loadu_ps(m, row + 16 * v), acc[u][v]);
      }
    }
  }
  for (; i < end; ++i) {
    const float* row = t + static_cast<int64_t>(w.row[i] - row_base) * ldt;
    const __m512 value = _mm512_set1_ps(w.value[i]);
    for (int v = 0; v < NV; ++v) {
      const __mmask16 m = v == NV - 1 ? tail : static_cast<__mmask16>(0xFFFF);
      acc[0][v] = _mm512_fmadd_ps(value, _mm512_maskz_loadu_ps(m, row + 16 * v), acc[0][v]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha);
  for (int v = 0; v < NV; ++v) {
    __m512 sum = acc[0][v];
    for (int u = 1; u < U; ++u) sum = _mm512_add_ps(sum, acc[u][v]);
    const __mmask16 m = v == NV - 1 ? tail : static_cast<__mmask16>(0xFFFF);
    _mm512_mask_storeu_ps(out + 16 * v, m, _mm512_fmadd_ps(va, sum, _mm512_maskz_loadu_ps(m, out + 16 * v)));
  }
}

template <int NV>
LSC_AVX512 void Accumulate(const ColumnView& w, int64_t n_begin, int64_t n_end, uint64_t* cursor, uint32_t row_end,
                           const float* t, int64_t ldt, uint32_t row_base, int64_t batch, float alpha, float* yt,
                           int64_t ldy) {
  const __mmask16 tail = TailMask(batch - 16 * (NV - 1));
  for (int64_t n = n_begin; n < n_end; ++n) {
    const uint64_t begin = cursor[n], limit = w.ptr[n + 1];
    uint64_t end = begin;
    while (end < limit && w.row[end] < row_end) ++end;
    cursor[n] = end;
    if (end > begin) {
      AccumulateColumn<NV, (NV == 1 ? 4 : 2)>(w, begin, end, t, ldt, row_base, tail, alpha, yt + n * ldy);
    }
  }
}

}  // namespace

namespace {

// R rows at once: the entries' indices and values are loaded once per 16 and gathered per row.
template <int R>
LSC_AVX512 void SpmvRows(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* t, int64_t ldt,
                         float alpha, float* y, int64_t ldy) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    const uint64_t begin = w.ptr[n], end = w.ptr[n + 1];
    for (uint64_t i = begin; i < end; i += 16) {
      const __mmask16 m = TailMask(static_cast<int64_t>(end - i));
      const __m512i index = _mm512_maskz_loadu_epi32(m, w.row + i);
      const __m512 value = _mm512_maskz_loadu_ps(m, w.value + i);
      for (int r = 0; r < R; ++r) {
        const __m512 x = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, index, t + r * ldt, 4);
        acc[r] = _mm512_fmadd_ps(x, value, acc[r]);
      }
    }
    for (int r = 0; r < R; ++r) y[r * ldy + n] += alpha * _mm512_reduce_add_ps(acc[r]);
  }
}

}  // namespace

LSC_AVX512 void SpmvAccumulateAvx512(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* t,
                                     int64_t ldt, int64_t rows, float alpha, float* y, int64_t ldy) {
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

LSC_AVX512 void AccumulateTileAvx512(const ColumnView& w, int64_t n_begin, int64_t n_end, uint64_t* cursor,
                                     uint32_t row_end, const float* t, int64_t ldt, uint32_t row_base, int64_t batch,
                                     float alpha, float* yt, int64_t ldy) {
  switch ((batch + 15) / 16) {
    case 1: return Accumulate<1>(w, n_begin, n_end, cursor, row_end, t, ldt, row_base, batch, alpha, yt, ldy);
    case 2: return Accumulate<2>(w, n_begin, n_end, cursor, row_end, t, ldt, row_base, batch, alpha, yt, ldy);
    case 3: return Accumulate<3>(w, n_begin, n_end, cursor, row_end, t, ldt, row_base, batch, alpha, yt, ldy);
    case 4: return Accumulate<4>(w, n_begin, n_end, cursor, row_end, t, ldt, row_base, batch, alpha, yt, ldy);
    default: return;
  }
}

}  // namespace lsc
#endif
