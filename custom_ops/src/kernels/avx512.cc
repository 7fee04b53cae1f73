// AVX-512 kernels (x86-64 with AVX512F/BW/VL/DQ; selected at run time).
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/views.h"

#define LSC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,popcnt")))
#define LSC_SWEEP_TARGET LSC_AVX512
#include "kernels/sliced_sweep.h"

namespace lsc {
namespace {

LSC_AVX512 inline __mmask16 TailMask(int64_t count) {
  return count >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << count) - 1);
}

// One output column: NV vectors of 16 batch lanes, the last one masked by `tail`, accumulated in
// U independent sets (enough chains to hide the FMA latency when NV is small).
template <int NV, int U>
LSC_AVX512 inline void Column(const ColumnView& w, int64_t n, const float* base, const int64_t* rows,
                              __mmask16 tail, float alpha, float beta, float* out) {
  __m512 acc[U][NV];
  for (int u = 0; u < U; ++u) {
    for (int v = 0; v < NV; ++v) acc[u][v] = _mm512_setzero_ps();
  }
  uint64_t i = w.ptr[n];
  const uint64_t end = w.ptr[n + 1];
  for (; i + U <= end; i += U) {
    for (int u = 0; u < U; ++u) {
      const float* row = base + rows[w.row[i + u]];
      const __m512 value = _mm512_set1_ps(w.value[i + u]);
      for (int v = 0; v < NV; ++v) {
        const __mmask16 m = v == NV - 1 ? tail : static_cast<__mmask16>(0xFFFF);
        acc[u][v] = _mm512_fmadd_ps(value, _mm512_maskz_loadu_ps(m, row + 16 * v), acc[u][v]);
      }
    }
  }
  for (; i < end; ++i) {
    const float* row = base + rows[w.row[i]];
    const __m512 value = _mm512_set1_ps(w.value[i]);
    for (int v = 0; v < NV; ++v) {
      const __mmask16 m = v == NV - 1 ? tail : static_cast<__mmask16>(0xFFFF);
      acc[0][v] = _mm512_fmadd_ps(value, _mm512_maskz_loadu_ps(m, row + 16 * v), acc[0][v]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int v = 0; v < NV; ++v) {
    __m512 sum = acc[0][v];
    for (int u = 1; u < U; ++u) sum = _mm512_add_ps(sum, acc[u][v]);
    const __mmask16 m = v == NV - 1 ? tail : static_cast<__mmask16>(0xFFFF);
    _mm512_mask_storeu_ps(out + 16 * v, m, _mm512_fmadd_ps(va, sum, vb));
  }
}

template <int NV>
LSC_AVX512 void Columns(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* base, const int64_t* rows,
                        int64_t batch, float alpha, const float* bias, float* yt, int64_t ldy) {
  const __mmask16 tail = TailMask(batch - 16 * (NV - 1));
  for (int64_t n = n_begin; n < n_end; ++n) {
    Column<NV, (NV == 1 ? 4 : 2)>(w, n, base, rows, tail, alpha, bias ? bias[n] : 0.0f, yt + n * ldy);
  }
}

// In-register transpose of 16 rows of 16 floats.
LSC_AVX512 inline void Transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int q = 0; q < 4; ++q) {  // rows 4q..4q+3: u[4q + j] holds element j (+4, +8, +12) of them
    const __m512d t0 = _mm512_castps_pd(t[4 * q]), t1 = _mm512_castps_pd(t[4 * q + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * q + 2]), t3 = _mm512_castps_pd(t[4 * q + 3]);
    u[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int j = 0; j < 4; ++j) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
    const __m512 v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[j + 8] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    r[j + 4] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[j + 12] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}

}  // namespace

LSC_AVX512 void SpmmTileAvx512(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* base,
                               const int64_t* rows, int64_t batch, float alpha, const float* bias, float* yt,
                               int64_t ldy) {
  switch ((batch + 15) / 16) {
    case 1: return Columns<1>(w, n_begin, n_end, base, rows, batch, alpha, bias, yt, ldy);
    case 2: return Columns<2>(w, n_begin, n_end, base, rows, batch, alpha, bias, yt, ldy);
    case 3: return Columns<3>(w, n_begin, n_end, base, rows, batch, alpha, bias, yt, ldy);
    case 4: return Columns<4>(w, n_begin, n_end, base, rows, batch, alpha, bias, yt, ldy);
    default: return;
  }
}

namespace {

// R activation rows at once: each row keeps its window in two registers and its accumulator;
// the offsets and values of a round are loaded once for all rows. Rounds are unrolled A at a
// time into A accumulator sets, so few rows still keep enough FMAs in flight.
template <int R>
LSC_AVX512 void WindowedRows(const WindowedView& w, int64_t g_begin, int64_t g_end, const float* x, int64_t ldx,
                             float alpha, const float* bias, float* y, int64_t ldy) {
  constexpr int A = R == 1 ? 4 : R == 2 ? 2 : 1;
  for (int64_t g = g_begin; g < g_end; ++g) {
    const uint8_t* offset = w.offset + w.group_start[g] * 16;
    const float* value = w.value + w.group_start[g] * 16;
    const uint8_t* rounds = w.rounds + g * w.windows;
    __m512 acc[A][R];
    for (int a = 0; a < A; ++a) {
      for (int r = 0; r < R; ++r) acc[a][r] = _mm512_setzero_ps();
    }
    for (int64_t win = 0; win < w.windows; ++win) {
      const int count = rounds[win];
      if (count == 0) continue;
      __m512 lo[R], hi[R];
      for (int r = 0; r < R; ++r) {
        lo[r] = _mm512_loadu_ps(x + r * ldx + 32 * win);
        hi[r] = _mm512_loadu_ps(x + r * ldx + 32 * win + 16);
      }
      int k = 0;
      for (; k + A <= count; k += A) {
        for (int a = 0; a < A; ++a) {
          const __m512i index =
              _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(offset + 16 * a)));
          const __m512 v = _mm512_loadu_ps(value + 16 * a);
          for (int r = 0; r < R; ++r) {
            acc[a][r] = _mm512_fmadd_ps(_mm512_permutex2var_ps(lo[r], index, hi[r]), v, acc[a][r]);
          }
        }
        offset += 16 * A;
        value += 16 * A;
      }
      for (; k < count; ++k) {  // the rest go to the last set, which the next window uses least
        const __m512i index = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(offset)));
        const __m512 v = _mm512_loadu_ps(value);
        for (int r = 0; r < R; ++r) {
          acc[A - 1][r] = _mm512_fmadd_ps(_mm512_permutex2var_ps(lo[r], index, hi[r]), v, acc[A - 1][r]);
        }
        offset += 16;
        value += 16;
      }
    }
    const int64_t n0 = g * 16;
    const __mmask16 m = TailMask(w.N - n0);
    const __m512 beta = bias ? _mm512_maskz_loadu_ps(m, bias + n0) : _mm512_setzero_ps();
    const __m512 va = _mm512_set1_ps(alpha);
    for (int r = 0; r < R; ++r) {
      __m512 sum = acc[0][r];
      for (int a = 1; a < A; ++a) sum = _mm512_add_ps(sum, acc[a][r]);
      _mm512_mask_storeu_ps(y + r * ldy + n0, m, _mm512_fmadd_ps(va, sum, beta));
    }
  }
}

}  // namespace

// Groups of 16 output columns; the activation window x[32 w, 32 w + 32) sits in two registers and
// one vpermt2ps per round routes each lane (column) its activation.
LSC_AVX512 void SpmvWindowedAvx512(const WindowedView& w, int64_t g_begin, int64_t g_end, const float* x,
                                   int64_t ldx, int64_t rows, float alpha, const float* bias, float* y, int64_t ldy) {
  switch (rows) {
    case 1: return WindowedRows<1>(w, g_begin, g_end, x, ldx, alpha, bias, y, ldy);
    case 2: return WindowedRows<2>(w, g_begin, g_end, x, ldx, alpha, bias, y, ldy);
    case 3: return WindowedRows<3>(w, g_begin, g_end, x, ldx, alpha, bias, y, ldy);
    case 4: return WindowedRows<4>(w, g_begin, g_end, x, ldx, alpha, bias, y, ldy);
    case 5: return WindowedRows<5>(w, g_begin, g_end, x, ldx, alpha, bias, y, ldy);
    case 6: return WindowedRows<6>(w, g_begin, g_end, x, ldx, alpha, bias, y, ldy);
    case 7: return WindowedRows<7>(w, g_begin, g_end, x, ldx, alpha, bias, y, ldy);
    case 8: return WindowedRows<8>(w, g_begin, g_end, x, ldx, alpha, bias, y, ldy);
    default: return;
  }
}

// The inner loop runs along the longer side, so that the 16 rows there (read, or written) each
// advance contiguously: a batch tile's columns of partial sums (many short rows) to the output
// rows, 1.2x faster than by source rows; activations (few long rows) to a K-block, as they are.
LSC_AVX512 void TransposeAvx512(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  const bool by_columns = rows > cols;  // outer loop over blocks of 16 columns, inner along the rows
  const int64_t outer = by_columns ? cols : rows, inner = by_columns ? rows : cols;
  for (int64_t o = 0; o < outer; o += 16) {
    for (int64_t i = 0; i < inner; i += 16) {
      const int64_t r0 = by_columns ? i : o, c0 = by_columns ? o : i;
      const int64_t nr = rows - r0 < 16 ? rows - r0 : 16, nc = cols - c0 < 16 ? cols - c0 : 16;
      __m512 r[16];
      const __mmask16 load = TailMask(nc), store = TailMask(nr);
      for (int k = 0; k < 16; ++k) {
        r[k] = k < nr ? _mm512_maskz_loadu_ps(load, src + (r0 + k) * lds + c0) : _mm512_setzero_ps();
      }
      Transpose16(r);
      for (int j = 0; j < nc; ++j) _mm512_mask_storeu_ps(dst + (c0 + j) * ldd + r0, store, r[j]);
    }
  }
}

namespace {

// One piece of at most 16 lanes of a run: lanes [lane, lane + popcount(store)) read floats at
// offset + stride * t; `lo` and `hi` mask the 32 floats a stride-2 piece spans.
struct GatherPiece {
  int32_t lane, offset;
  __mmask16 store, lo, hi;
};

LSC_AVX512 inline GatherPiece PieceOf(const GatherRun& run, int64_t t, int64_t stride) {
  const int64_t n = run.count - t < 16 ? run.count - t : 16;
  const int64_t floats = stride * (n - 1) + 1;  // the floats the piece's lanes span
  return GatherPiece{static_cast<int32_t>(run.lane + t), static_cast<int32_t>(run.offset + stride * t), TailMask(n),
                     TailMask(floats), TailMask(floats > 16 ? floats - 16 : 0)};
}

// Stride 1: a masked copy; stride 2: two masked loads and a vpermt2ps keeping the even floats.
LSC_AVX512 inline void CopyPiece(const GatherPiece& p, const float* row, int64_t stride, __m512i evens, float* out) {
  __m512 v;
  if (stride == 1) {
    v = _mm512_maskz_loadu_ps(p.store, row + p.offset);
  } else {
    v = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(p.lo, row + p.offset), evens,
                               _mm512_maskz_loadu_ps(p.hi, row + p.offset + 16));
  }
  _mm512_mask_storeu_ps(out + p.lane, p.store, v);
}

}  // namespace

// Strides 1 and 2 copy runs a piece of 16 lanes at a time, the pieces' masks computed once per
// call when they are few; short runs (more than two pieces per vector of a tile of at most 128
// lanes) and other strides take one vgatherdps per 16 lanes when lane offsets are given, else
// (other strides) the scalar kernel. Every load is masked to the floats a lane reads.
LSC_AVX512 void GatherAvx512(const float* src, const int64_t* row_offset, int64_t rows, const GatherView& view,
                             float* dst, int64_t ldd) {
  constexpr int64_t kMaxPieces = 16;
  const int64_t vectors = (view.lanes + 15) / 16;
  const bool copies = view.stride == 1 || view.stride == 2;
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  GatherPiece pieces[kMaxPieces];
  int64_t count = 0;
  bool few = copies;
  for (int64_t i = 0; few && i < view.run_count; ++i) {
    for (int64_t t = 0; few && t < view.runs[i].count; t += 16) {
      few = count < kMaxPieces && count < 2 * vectors;
      if (few) pieces[count++] = PieceOf(view.runs[i], t, view.stride);
    }
  }
  if (few) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < count; ++i) CopyPiece(pieces[i], src + row_offset[r], view.stride, evens, dst + r * ldd);
    }
    return;
  }
  if (view.lane_offset != nullptr && vectors <= 8) {
    __m512i index[8];
    __mmask16 mask[8];
    for (int64_t v = 0; v < vectors; ++v) {
      mask[v] = TailMask(view.lanes - 16 * v);
      index[v] = _mm512_maskz_loadu_epi32(mask[v], view.lane_offset + 16 * v);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = src + row_offset[r];
      for (int64_t v = 0; v < vectors; ++v) {
        _mm512_mask_storeu_ps(dst + r * ldd + 16 * v, mask[v],
                              _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask[v], index[v], row, 4));
      }
    }
    return;
  }
  if (!copies) return GatherScalar(src, row_offset, rows, view, dst, ldd);  // another stride, runs only
  for (int64_t r = 0; r < rows; ++r) {  // many pieces (long rows)
    const float* row = src + row_offset[r];
    float* out = dst + r * ldd;
    for (int64_t i = 0; i < view.run_count; ++i) {
      const GatherRun& run = view.runs[i];
      for (int64_t t = 0; t < run.count; t += 16) CopyPiece(PieceOf(run, t, view.stride), row, view.stride, evens, out);
    }
  }
}

namespace {

// e^x for x in [-88, 0]: 2^n * e^r with |r| <= ln 2 / 2, e^r by its degree-6 Taylor polynomial
// (relative error below 2e-7), 2^n by vscalefps.
LSC_AVX512 inline __m512 ExpNonPositive(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln 2, high and low parts
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

}  // namespace

namespace {

// x * scale + bias (16 keys, lanes past T masked off by m) stored at s; returns the running
// maximum with them (a NaN lane keeps top: the sum of the exponentials finds it).
LSC_AVX512 inline __m512 StoreScores(const AttentionHead& a, __m512 x, __mmask16 m, const float* bias, float* s,
                                     __m512 top) {
  x = _mm512_mul_ps(x, _mm512_set1_ps(a.scale));
  if (a.bias != nullptr) x = _mm512_add_ps(x, a.bias_col ? _mm512_maskz_loadu_ps(m, bias) : _mm512_set1_ps(*bias));
  _mm512_mask_storeu_ps(s, m, x);
  return _mm512_mask_max_ps(top, m, x, top);
}

// R query rows of the scores against keys [j0, j0 + 64): 4 vectors of 16 keys per row, masked by
// m[c] (lanes past T), accumulated over the H key rows; stored scaled and biased, and each row's
// running maximum kept in top[r] (16 lanes; a NaN lane keeps its old value, the sum finds it).
template <int R>
LSC_AVX512 inline void ScoreRows(const AttentionHead& a, int64_t i0, int64_t j0, const __mmask16* m, float* s,
                                 __m512* top) {
  const int64_t H = a.H, T = a.T;
  const float* q = a.q + i0 * H;
  const float* kh = a.k + j0;
  __m512 acc[R][4];
  _Pragma("GCC unroll 8")
  for (int r = 0; r < R; ++r) {
    _Pragma("GCC unroll 4")
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  const __mmask16 m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3];
  for (int64_t h = 0; h < H; ++h, kh += T) {
    const __m512 k0 = _mm512_maskz_loadu_ps(m0, kh), k1 = _mm512_maskz_loadu_ps(m1, kh + 16),
                 k2 = _mm512_maskz_loadu_ps(m2, kh + 32), k3 = _mm512_maskz_loadu_ps(m3, kh + 48);
    _Pragma("GCC unroll 8")
    for (int r = 0; r < R; ++r) {
      const __m512 qb = _mm512_set1_ps(q[r * H + h]);
      acc[r][0] = _mm512_fmadd_ps(qb, k0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(qb, k1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(qb, k2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(qb, k3, acc[r][3]);
    }
  }
  const int64_t step = a.bias ? a.bias_col * 16 : 0;  // (nullptr + 0 stays null)
  _Pragma("GCC unroll 8")
  for (int r = 0; r < R; ++r) {
    float* row = s + r * T + j0;
    const float* bias = a.bias ? a.bias + (i0 + r) * a.bias_row + a.bias_col * j0 : nullptr;
    __m512 t = top[r];
    t = StoreScores(a, acc[r][0], m0, bias, row, t);
    t = StoreScores(a, acc[r][1], m1, bias + step, row + 16, t);
    t = StoreScores(a, acc[r][2], m2, bias + 2 * step, row + 32, t);
    t = StoreScores(a, acc[r][3], m3, bias + 3 * step, row + 48, t);
    top[r] = t;
  }
}

// R output rows, values [d0, d0 + 32) (2 vectors, masked by n0, n1): sum_j p[r][j] v[j], times
// inv[r].
template <int R>
LSC_AVX512 inline void WeighRows(const AttentionHead& a, const float* p, const float* inv, int64_t i0, int64_t d0,
                                 __mmask16 n0, __mmask16 n1) {
  const int64_t T = a.T, Hv = a.Hv;
  __m512 acc[R][2];
  _Pragma("GCC unroll 8")
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const float* v = a.v + d0;
  for (int64_t j = 0; j < T; ++j, v += Hv) {
    const __m512 v0 = _mm512_maskz_loadu_ps(n0, v), v1 = _mm512_maskz_loadu_ps(n1, v + 16);
    _Pragma("GCC unroll 8")
    for (int r = 0; r < R; ++r) {
      const __m512 pb = _mm512_set1_ps(p[r * T + j]);
      acc[r][0] = _mm512_fmadd_ps(pb, v0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(pb, v1, acc[r][1]);
    }
  }
  float* o = a.o + i0 * Hv + d0;
  _Pragma("GCC unroll 8")
  for (int r = 0; r < R; ++r) {
    const __m512 scale = _mm512_set1_ps(inv[r]);
    _mm512_mask_storeu_ps(o + r * Hv, n0, _mm512_mul_ps(acc[r][0], scale));
    _mm512_mask_storeu_ps(o + r * Hv + 16, n1, _mm512_mul_ps(acc[r][1], scale));
  }
}

// One row of scaled, biased scores with maximum `max`, in place: exp(x - max), 0 below exp(-87)
// (no denormals); returns 1 / sum. A NaN in the row, or an infinite maximum, makes some x - max
// NaN, which exp and the sum keep, so the row comes out NaN.
LSC_AVX512 inline float ExpRow(int64_t T, float max, float* s) {
  const __m512 shift = _mm512_set1_ps(max), floor = _mm512_set1_ps(-87.0f);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < T; j += 16) {
    const __mmask16 m = TailMask(T - j);
    const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), shift);
    const __mmask16 kept = _mm512_mask_cmp_ps_mask(m, x, floor, _CMP_NLT_UQ);  // NaN kept
    const __m512 e = _mm512_maskz_mov_ps(kept, ExpNonPositive(_mm512_max_ps(floor, x)));  // (NaN: x)
    _mm512_mask_storeu_ps(s + j, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  return 1.0f / _mm512_reduce_add_ps(sum);
}

// Per block of rows: the scores (4 rows x 64 keys per register tile, scaled and biased, with
// each row's maximum), exp row by row in L1, then the weighted values (8 rows x 32 values per
// tile), scaled by 1 / sum last.
}  // namespace

LSC_AVX512 void AttentionRowsAvx512(const AttentionHead& a, int64_t r0, int64_t rows, float* scores) {
  for (int64_t r = 0; r < rows; r += 8) {
    const int64_t count = std::min<int64_t>(8, rows - r);
    float* s = scores + r * a.T;
    __m512 top[8];
    for (int t = 0; t < 8; ++t) top[t] = _mm512_set1_ps(-INFINITY);
    for (int64_t j0 = 0; j0 < a.T; j0 += 64) {
      __mmask16 m[4];
      _Pragma("GCC unroll 4")
      for (int c = 0; c < 4; ++c) m[c] = TailMask(std::max<int64_t>(a.T - j0 - 16 * c, 0));
      int64_t t = 0;
      for (; t + 4 <= count; t += 4) ScoreRows<4>(a, r0 + r + t, j0, m, s + t * a.T, top + t);
      for (; t < count; ++t) ScoreRows<1>(a, r0 + r + t, j0, m, s + t * a.T, top + t);
    }
    float inv[8];
    for (int64_t t = 0; t < count; ++t) inv[t] = ExpRow(a.T, _mm512_reduce_max_ps(top[t]), s + t * a.T);
    for (int64_t d0 = 0; d0 < a.Hv; d0 += 32) {
      const __mmask16 n0 = TailMask(a.Hv - d0), n1 = TailMask(std::max<int64_t>(a.Hv - d0 - 16, 0));
      switch (count) {
        case 8: WeighRows<8>(a, s, inv, r0 + r, d0, n0, n1); break;
        case 7: WeighRows<7>(a, s, inv, r0 + r, d0, n0, n1); break;
        case 6: WeighRows<6>(a, s, inv, r0 + r, d0, n0, n1); break;
        case 5: WeighRows<5>(a, s, inv, r0 + r, d0, n0, n1); break;
        case 4: WeighRows<4>(a, s, inv, r0 + r, d0, n0, n1); break;
        case 3: WeighRows<3>(a, s, inv, r0 + r, d0, n0, n1); break;
        case 2: WeighRows<2>(a, s, inv, r0 + r, d0, n0, n1); break;
        default: WeighRows<1>(a, s, inv, r0 + r, d0, n0, n1); break;
      }
    }
  }
}

// erfc(|z|) for z = x / sqrt(2) by the Chebyshev fit of Numerical Recipes' erfcc (relative
// error below 1.2e-7): erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z / 2). Then Gelu(x) =
// x / 2 * erfc(|z|) for x < 0, without cancellation, and x / 2 * (2 - erfc(|z|)) otherwise;
// beyond |z| > 9 (|x| > 12.7, erfc < 5e-37) Gelu is x, or x * 0 (-0, or NaN for -inf).
LSC_AVX512 void GeluAvx512(float* y, int64_t count) {
  static constexpr float kP[] = {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                                 -0.18628806f, 0.09678418f,  0.37409196f, 1.00002368f,  -1.26551223f};
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 m = TailMask(count - i);
    const __m512 x = _mm512_maskz_loadu_ps(m, y + i);
    const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
    const __m512 zc = _mm512_min_ps(z, _mm512_set1_ps(9.0f));  // (a NaN becomes 9 here, and stays NaN in x)
    const __m512 d = _mm512_fmadd_ps(zc, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f));
    const __m512 r = _mm512_rcp14_ps(d);  // 1 / d to 2^-14, then one Newton step (a division is 3x slower)
    const __m512 t = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
    __m512 p = _mm512_set1_ps(kP[0]);
    for (int j = 1; j < 10; ++j) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(kP[j]));
    const __m512 erfc = _mm512_mul_ps(t, ExpNonPositive(_mm512_fnmadd_ps(zc, zc, p)));
    const __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 factor = _mm512_mask_blend_ps(negative, _mm512_sub_ps(_mm512_set1_ps(2.0f), erfc), erfc);
    __m512 g = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), factor);
    const __mmask16 far = _mm512_cmp_ps_mask(z, _mm512_set1_ps(9.0f), _CMP_GT_OQ);
    g = _mm512_mask_blend_ps(far, g, _mm512_mask_blend_ps(negative, x, _mm512_mul_ps(x, _mm512_setzero_ps())));
    _mm512_mask_storeu_ps(y + i, m, g);  // (NaN: every comparison false, and NaN arithmetic gives NaN)
  }
}

// Two passes over each row (in L1): the mean, then the squared deviations, 16 lanes each.
LSC_AVX512 void LayerNormAvx512(float* y, int64_t rows, int64_t n, const float* scale, const float* bias,
                                float epsilon) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = y + r * n;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
      s0 = _mm512_add_ps(s0, _mm512_loadu_ps(row + i));
      s1 = _mm512_add_ps(s1, _mm512_loadu_ps(row + i + 16));
    }
    for (; i < n; i += 16) s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(TailMask(n - i), row + i));
    const float mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / static_cast<float>(n);
    const __m512 vmean = _mm512_set1_ps(mean);
    s0 = s1 = _mm512_setzero_ps();
    for (i = 0; i + 32 <= n; i += 32) {
      const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(row + i), vmean);
      const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(row + i + 16), vmean);
      s0 = _mm512_fmadd_ps(d0, d0, s0);
      s1 = _mm512_fmadd_ps(d1, d1, s1);
    }
    for (; i < n; i += 16) {
      const __mmask16 m = TailMask(n - i);
      const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, row + i), vmean);
      s0 = _mm512_fmadd_ps(d, d, s0);
    }
    const float squares = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    const __m512 rstd = _mm512_set1_ps(1.0f / std::sqrt(squares / static_cast<float>(n) + epsilon));
    for (i = 0; i < n; i += 16) {
      const __mmask16 m = TailMask(n - i);
      const __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, row + i), vmean), rstd);
      const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + i) : _mm512_setzero_ps();
      _mm512_mask_storeu_ps(row + i, m, _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(m, scale + i), b));
    }
  }
}

// ---- tiled layout: batches and convolutions -----------------------------------------------

namespace {

LSC_AVX512 inline __m512 ApplyEpilogue(__m512 sum, __m512 alpha, __m512 beta, bool relu) {
  const __m512 y = _mm512_fmadd_ps(alpha, sum, beta);
  return relu ? _mm512_max_ps(_mm512_setzero_ps(), y) : y;  // max(0, NaN) is NaN here
}

// NV vectors of 16 lanes (the last masked by `tail`) in U independent accumulator sets, enough
// chains to hide the FMA latency.
// A full vector, or the lanes of a masked one (the last of a partial tile).
template <bool FULL>
LSC_AVX512 inline __m512 Load(__mmask16 m, const float* p) {
  return FULL ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}

// The tiled offsets and values stream from L3 (or DRAM) once per tile: each column asks for the
// lines kEntryPrefetchBytes past its own end in both arrays, which the next columns read (1.03x
// on ResNet-50). The address is formed as an integer: `end` may be null (no non-zeros).
constexpr uintptr_t kEntryPrefetchBytes = 1024;
LSC_AVX512 inline void PrefetchAfter(const void* end, int lines) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(end) + kEntryPrefetchBytes;
  for (int line = 0; line < lines; ++line) _mm_prefetch(reinterpret_cast<const char*>(at + 64 * line), _MM_HINT_T0);
}

// Output columns a page or more apart lie in pages of their own, whose lines the hardware
// prefetchers (which follow streams within a page) do not fetch: a convolution's output planes
// written in place, and its residual's. Each column then asks for the lines of the column
// kColumnPrefetchAhead places on, for writing in the view's first K-block (also when its sums
// start from Y, as when Y holds the residual: 1.2x on those layers) and the residual's in the
// last (ResNet-50's 1 x 1 layers on 56 x 56 maps, output and residual from L3: 1.27x; the
// model 1.04x). MatMul tiles (columns at most a few hundred bytes apart) skip it: 0.98x there.
constexpr int64_t kColumnPrefetchAhead = 2;
constexpr int64_t kFarApartBytes = 4096;
LSC_AVX512 inline void PrefetchColumn(const float* yt, const Epilogue& e, int64_t n, int64_t ldy, int vectors,
                                      bool first, bool last) {
  for (int v = 0; v < vectors; ++v) {
    if (first) _mm_prefetch(reinterpret_cast<const char*>(yt + n * ldy + 16 * v), _MM_HINT_ET0);
    if (last && e.residual != nullptr) {
      _mm_prefetch(reinterpret_cast<const char*>(e.residual + n * ldy + 16 * v), _MM_HINT_T0);
    }
  }
}

// acc[u] += value * the NV vectors of the activation row at `row`.
template <int NV, int U, bool FULL>
LSC_AVX512 inline void MultiplyAdd(__m512 (&acc)[U][NV], int u, __m512 value, const float* row, __mmask16 tail) {
  for (int v = 0; v < NV; ++v) {
    const __mmask16 m = v == NV - 1 ? tail : static_cast<__mmask16>(0xFFFF);
    acc[u][v] = _mm512_fmadd_ps(value, Load<FULL>(m, row + 16 * v), acc[u][v]);
  }
}

// The non-zeros [p, end) of one column into acc. 16-bit offsets go four at a time, in one 8-byte
// load, instead of one load per non-zero (the loads, not the FMAs, bound this loop: 1.1x). Each
// value is broadcast straight from memory, a load-port uop: a vpermps from one 16-byte load of
// four values takes port 5 from the FMAs (0.97x on Sapphire Rapids).
template <int NV, int U, bool FULL, bool SHUFFLE, typename Offset>
LSC_AVX512 inline void ColumnSums(const Offset* offset, const float* value, uint64_t p, const uint64_t end,
                                  const float* base, __mmask16 tail, __m512 (&acc)[U][NV]) {
  PrefetchAfter(offset + end, sizeof(Offset) == 2 ? 1 : 2);
  PrefetchAfter(value + end, 2);
  if (sizeof(Offset) == 2) {
    for (; p + 4 <= end; p += 4) {
      uint64_t four;
      std::memcpy(&four, offset + p, sizeof(four));
      if (SHUFFLE) {  // the four values from one load, each spread by a shuffle
        const __m512 v4 = _mm512_broadcast_f32x4(_mm_loadu_ps(value + p));
        MultiplyAdd<NV, U, FULL>(acc, 0, _mm512_shuffle_ps(v4, v4, 0x00), base + (four & 0xFFFF), tail);
        MultiplyAdd<NV, U, FULL>(acc, 1 % U, _mm512_shuffle_ps(v4, v4, 0x55), base + (four >> 16 & 0xFFFF), tail);
        MultiplyAdd<NV, U, FULL>(acc, 2 % U, _mm512_shuffle_ps(v4, v4, 0xAA), base + (four >> 32 & 0xFFFF), tail);
        MultiplyAdd<NV, U, FULL>(acc, 3 % U, _mm512_shuffle_ps(v4, v4, 0xFF), base + (four >> 48), tail);
        continue;
      }
      MultiplyAdd<NV, U, FULL>(acc, 0, _mm512_set1_ps(value[p]), base + (four & 0xFFFF), tail);
      MultiplyAdd<NV, U, FULL>(acc, 1 % U, _mm512_set1_ps(value[p + 1]), base + (four >> 16 & 0xFFFF), tail);
      MultiplyAdd<NV, U, FULL>(acc, 2 % U, _mm512_set1_ps(value[p + 2]), base + (four >> 32 & 0xFFFF), tail);
      MultiplyAdd<NV, U, FULL>(acc, 3 % U, _mm512_set1_ps(value[p + 3]), base + (four >> 48), tail);
    }
  } else {
    for (; p + U <= end; p += U) {
      for (int u = 0; u < U; ++u) MultiplyAdd<NV, U, FULL>(acc, u, _mm512_set1_ps(value[p + u]), base + offset[p + u], tail);
    }
  }
  for (; p < end; ++p) MultiplyAdd<NV, U, FULL>(acc, U - 1, _mm512_set1_ps(value[p]), base + offset[p], tail);
}

template <int NV, int U, bool FULL, bool SHUFFLE, typename Offset>
LSC_AVX512 void TiledColumns(const TiledView& w, const Offset* offset, int64_t n_begin, int64_t n_end,
                             const float* base, int64_t batch, const Epilogue& e, float* yt, int64_t ldy) {
  const __mmask16 tail = FULL ? static_cast<__mmask16>(0xFFFF) : TailMask(batch - 16 * (NV - 1));
  const __m512 va = _mm512_set1_ps(e.alpha);
  const bool far_apart = ldy * static_cast<int64_t>(sizeof(float)) >= kFarApartBytes;
  for (int64_t c0 = n_begin; c0 < n_end; c0 += w.chunk) {
    const int64_t c1 = c0 + w.chunk < n_end ? c0 + w.chunk : n_end;
    for (int64_t b = 0; b < w.blocks; ++b) {
      const uint64_t* start = w.start + b * w.N;
      const int32_t* order = w.column + b * w.N;
      const bool first = b == 0 && !w.accumulate, last = b == w.blocks - 1 && !w.partial;
      for (int64_t i = c0; i < c1; ++i) {
        const int64_t n = order[i];
        float* out = yt + n * ldy;
        if (far_apart && i + kColumnPrefetchAhead < c1) PrefetchColumn(yt, e, order[i + kColumnPrefetchAhead], ldy,
                                                                       NV, b == 0, last);
        __m512 acc[U][NV];
        for (int v = 0; v < NV; ++v) {
          const __mmask16 m = v == NV - 1 ? tail : static_cast<__mmask16>(0xFFFF);
          acc[0][v] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, out + 16 * v);
          for (int u = 1; u < U; ++u) acc[u][v] = _mm512_setzero_ps();
        }
        ColumnSums<NV, U, FULL, SHUFFLE>(offset, w.value, start[i], start[i + 1], base, tail, acc);
        const __m512 beta = _mm512_set1_ps(e.bias ? e.bias[n] : 0.0f);
        for (int v = 0; v < NV; ++v) {
          __m512 sum = acc[0][v];
          for (int u = 1; u < U; ++u) sum = _mm512_add_ps(sum, acc[u][v]);
          const __mmask16 m = v == NV - 1 ? tail : static_cast<__mmask16>(0xFFFF);
          if (last && e.residual != nullptr) {
            sum = _mm512_add_ps(_mm512_fmadd_ps(va, sum, beta),
                                _mm512_maskz_loadu_ps(m, e.residual + n * ldy + 16 * v));
            _mm512_mask_storeu_ps(out + 16 * v, m, e.relu ? _mm512_max_ps(_mm512_setzero_ps(), sum) : sum);
          } else {
            _mm512_mask_storeu_ps(out + 16 * v, m, last ? ApplyEpilogue(sum, va, beta, e.relu) : sum);
          }
        }
      }
    }
  }
}

template <bool SHUFFLE, typename Offset>
LSC_AVX512 void TiledDispatch(const TiledView& w, const Offset* offset, int64_t n_begin, int64_t n_end,
                              const float* base, int64_t batch, const Epilogue& e, float* yt, int64_t ldy) {
  const bool full = batch % 16 == 0;
#define LSC_TILED(NV, U)                                                                             \
  return full ? TiledColumns<NV, U, true, SHUFFLE>(w, offset, n_begin, n_end, base, batch, e, yt, ldy) \
              : TiledColumns<NV, U, false, SHUFFLE>(w, offset, n_begin, n_end, base, batch, e, yt, ldy)
  switch ((batch + 15) / 16) {
    case 1: LSC_TILED(1, 4);
    case 2: LSC_TILED(2, 3);
    case 3: LSC_TILED(3, 2);
    case 4: LSC_TILED(4, 2);
    case 5: LSC_TILED(5, 2);
    case 6: LSC_TILED(6, 1);  // 6 or more independent chains hide the FMA latency
    case 7: LSC_TILED(7, 1);
    case 8: LSC_TILED(8, 1);
    default: return;
  }
#undef LSC_TILED
}

}  // namespace

LSC_AVX512 void SpmmTiledAvx512(const TiledView& w, int64_t n_begin, int64_t n_end, const float* base, int64_t batch,
                                const Epilogue& e, float* yt, int64_t ldy) {
  // On AMD's cores the shuffles run beside the FMAs (Zen 5, 128 rows: 1.04-1.05x); on Intel's
  // they take port 5 from them (a vpermps of four values: 0.97x on Sapphire Rapids).
  // LSC_ORT_TILED_SHUFFLE = 0 or 1 overrides the choice (read once; for the tests).
  static const bool shuffle = [] {
    const char* forced = std::getenv("LSC_ORT_TILED_SHUFFLE");
    return forced && *forced ? std::strcmp(forced, "1") == 0 : CpuVendorIsAmd();
  }();
  if (w.offset16 != nullptr) {
    return shuffle ? TiledDispatch<true>(w, w.offset16, n_begin, n_end, base, batch, e, yt, ldy)
                   : TiledDispatch<false>(w, w.offset16, n_begin, n_end, base, batch, e, yt, ldy);
  }
  return TiledDispatch<false>(w, w.offset32, n_begin, n_end, base, batch, e, yt, ldy);
}

// ---- sliced layout: one or two rows at memory speed ----------------------------------------

namespace {

// Steps of one round as 16 int32, and the values as 16 floats with the mask of non-zero lanes.
template <int STEP>
LSC_AVX512 inline __m512i LoadSteps(const uint8_t* p) {
  if (STEP == 1) return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <SlicedValue T>
LSC_AVX512 inline __m512 LoadValues(const uint8_t* p, __mmask16* nonzero) {
  if (T == SlicedValue::kFloat32) {
    const __m512i bits = _mm512_loadu_si512(p);
    *nonzero = _mm512_test_epi32_mask(bits, bits);
    return _mm512_castsi512_ps(bits);
  }
  if (T == SlicedValue::kFloat16) {
    const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    *nonzero = _mm256_test_epi16_mask(bits, bits);
    return _mm512_cvtph_ps(bits);
  }
  const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  *nonzero = _mm_test_epi8_mask(bits, bits);
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bits));
}

// Rounds ahead that the sliced kernel asks for its streams: 48 (3 KiB of fp32 values) keeps
// enough lines in flight for one core to stream from DRAM (8192 x 8192 at 90%, caches flushed
// before each run: 1.05x over 16); a weight held in L3 does not notice.
constexpr int kPrefetchRounds = 48;

// Groups the sliced kernel reads side by side. One core streams from DRAM faster with more
// sequential streams in flight: 4 groups (8 streams) read 8192 x 8192 at 90% 1.3x faster than one
// group (2.3 against 3.1 ms, caches flushed before each run; 2 groups: 1.23x, 8 groups: 1.2x).
// A weight held in L2 does not notice; one held in L3 reads about 5% slower.
constexpr int kSlicedWays = 4;

// One sequential reader of a group's rounds: its stream positions, row indices and two
// accumulator sets.
template <int R, int STEP, SlicedValue T>
struct SlicedCursor {
  static constexpr int width = T == SlicedValue::kFloat32 ? 4 : T == SlicedValue::kFloat16 ? 2 : 1;
  const uint8_t* step;
  const uint8_t* value;
  __m512i index;
  __m512 acc[2][R];

  LSC_AVX512 inline void Start(const SlicedView& w, int64_t g) {
    const uint64_t round = w.group_start[g];
    step = w.step + round * 16 * STEP;
    value = w.value + round * 16 * width;
    index = _mm512_setzero_si512();
    for (int u = 0; u < 2; ++u) {
      for (int m = 0; m < R; ++m) acc[u][m] = _mm512_setzero_ps();
    }
  }
  // The streams come from L3 or DRAM: ask for them a few rounds ahead (once per two rounds).
  LSC_AVX512 inline void Prefetch() const {
    _mm_prefetch(reinterpret_cast<const char*>(value + kPrefetchRounds * 16 * width), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(value + kPrefetchRounds * 16 * width + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(step + kPrefetchRounds * 16 * STEP), _MM_HINT_T0);
  }
  // The next round into accumulator set u.
  LSC_AVX512 inline void Round(int u, const float* x, int64_t ldx) {
    index = _mm512_add_epi32(index, LoadSteps<STEP>(step));
    __mmask16 nonzero;
    const __m512 v = LoadValues<T>(value, &nonzero);
    for (int m = 0; m < R; ++m) {  // every index is a row < K; zero lanes leave acc as it is
      const __m512 a = _mm512_i32gather_ps(index, x + m * ldx, 4);
      acc[u][m] = _mm512_mask3_fmadd_ps(v, a, acc[u][m], nonzero);
    }
    step += 16 * STEP;
    value += 16 * width;
  }
  // The epilogue of the sums, scattered to group g's columns.
  LSC_AVX512 inline void Store(const SlicedView& w, int64_t g, const Epilogue& e, float* y, int64_t ldy) const {
    const __m512 va = _mm512_set1_ps(e.alpha * w.scale);
    const __m512i column = _mm512_loadu_si512(w.column + g * 16);
    const __mmask16 valid = _mm512_cmpge_epi32_mask(column, _mm512_setzero_si512());
    const __m512 beta = e.bias ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, column, e.bias, 4)
                               : _mm512_setzero_ps();
    for (int m = 0; m < R; ++m) {
      const __m512 out = ApplyEpilogue(_mm512_add_ps(acc[0][m], acc[1][m]), va, beta, e.relu);
      _mm512_mask_i32scatter_ps(y + m * ldy, valid, column, out, 4);
    }
  }
};

// A reader of a group's windowed slices: per round, the window of kSlicedWindow rows from two
// loads of each row of x, and one permute routes each lane its row (no gather).
template <int R, SlicedValue T>
struct WindowCursor : SlicedCursor<R, 1, T> {
  using Base = SlicedCursor<R, 1, T>;
  const uint16_t* advance;
  int64_t start;

  LSC_AVX512 inline void Start(const SlicedView& w, int64_t g) {
    Base::Start(w, g);
    this->value = w.value + w.value_start[g] * Base::width;
    advance = w.window + w.group_start[g];
    start = 0;
  }
  LSC_AVX512 inline void Prefetch() const {
    Base::Prefetch();
    _mm_prefetch(reinterpret_cast<const char*>(advance + kPrefetchRounds), _MM_HINT_T0);
  }
  LSC_AVX512 inline void Round(int u, const float* x, int64_t ldx) {
    start += *advance++;
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(this->step));
    const __mmask16 nonzero = static_cast<__mmask16>(~_mm_movepi8_mask(bytes));  // kIdleLane: bit 7
    const __m512i offset = _mm512_cvtepu8_epi32(bytes);  // the permute reads bits 0-4
    __mmask16 unused;
    const __m512 v = _mm512_maskz_expand_ps(nonzero, LoadValues<T>(this->value, &unused));
    for (int m = 0; m < R; ++m) {
      const float* window = x + m * ldx + start;
      const __m512 a = _mm512_permutex2var_ps(_mm512_loadu_ps(window), offset, _mm512_loadu_ps(window + 16));
      this->acc[u][m] = _mm512_mask3_fmadd_ps(v, a, this->acc[u][m], nonzero);
    }
    this->step += 16;
    this->value += _mm_popcnt_u32(nonzero) * Base::width;
  }
};

template <int STEP, SlicedValue T>
LSC_AVX512 void SlicedDispatchRows(const SlicedView& w, int64_t g_begin, int64_t g_end, const float* x, int64_t ldx,
                                   int64_t rows, const Epilogue& e, float* y, int64_t ldy) {
  if (w.window) {
    if (rows == 1) return SweepSlicedGroups<kSlicedWays, WindowCursor<1, T>>(w, g_begin, g_end, x, ldx, e, y, ldy);
    return SweepSlicedGroups<kSlicedWays, WindowCursor<2, T>>(w, g_begin, g_end, x, ldx, e, y, ldy);
  }
  if (rows == 1) return SweepSlicedGroups<kSlicedWays, SlicedCursor<1, STEP, T>>(w, g_begin, g_end, x, ldx, e, y, ldy);
  return SweepSlicedGroups<kSlicedWays, SlicedCursor<2, STEP, T>>(w, g_begin, g_end, x, ldx, e, y, ldy);
}

template <int STEP>
LSC_AVX512 void SlicedDispatchValue(const SlicedView& w, int64_t g_begin, int64_t g_end, const float* x, int64_t ldx,
                                    int64_t rows, const Epilogue& e, float* y, int64_t ldy) {
  switch (w.value_type) {
    case SlicedValue::kFloat32:
      return SlicedDispatchRows<STEP, SlicedValue::kFloat32>(w, g_begin, g_end, x, ldx, rows, e, y, ldy);
    case SlicedValue::kFloat16:
      return SlicedDispatchRows<STEP, SlicedValue::kFloat16>(w, g_begin, g_end, x, ldx, rows, e, y, ldy);
    case SlicedValue::kInt8:
      return SlicedDispatchRows<STEP, SlicedValue::kInt8>(w, g_begin, g_end, x, ldx, rows, e, y, ldy);
  }
}

}  // namespace

LSC_AVX512 void SpmvSlicedAvx512(const SlicedView& w, int64_t g_begin, int64_t g_end, const float* x, int64_t ldx,
                                 int64_t rows, const Epilogue& e, float* y, int64_t ldy) {
  if (rows < 1 || rows > kSlicedRows) return;
  if (w.step_bytes == 1 || w.window) return SlicedDispatchValue<1>(w, g_begin, g_end, x, ldx, rows, e, y, ldy);
  return SlicedDispatchValue<2>(w, g_begin, g_end, x, ldx, rows, e, y, ldy);
}

}  // namespace lsc
#endif
