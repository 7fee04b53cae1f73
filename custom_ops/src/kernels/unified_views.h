// Plain-pointer views and kernel signatures of the unified-block execution layout (mswu blobs).
// SIMD kernel files include only this header and views.h: no standard-library templates.
//
// A unified block w = a * (s_0, ..., s_{L-1}) along the reduction axis contributes
// a * sum_i s_i * x[first + i] to its output column: the signed inputs are summed once (a
// "signed sum", shared by every column whose block has the same inputs and signs), then scaled
// with one multiply.
#pragma once

#include <cstdint>

#include "kernels/views.h"

namespace lsc {

constexpr int kMaxSignedSumLength = 64;

struct SignedSumView {
  int64_t count;
  const uint32_t* first;   // k of the first input of each sum
  const uint32_t* length;  // inputs per sum, 1..kMaxSignedSumLength
  const uint64_t* signs;   // bit i set: input first + i is subtracted
};

// t[r * ldt + (e - e_begin)] = sum_i (-1)^(signs[e] >> i & 1) * a[r * lda + first[e] + i]
// for sums e in [e_begin, e_end) and rows r < rows.
using SignedSumsRowsFn = void (*)(const SignedSumView& s, int64_t e_begin, int64_t e_end, const float* a,
                                  int64_t lda, int64_t rows, float* t, int64_t ldt);

// yt[n * ldy + b] += alpha * sum_i value[i] * t[(row[i] - row_base) * ldt + b] for b < batch (at most 64)
// and n in [n_begin, n_end), over the entries i of column n from cursor[n] up to the first whose
// row is >= row_end; cursor[n] is left there. Columns are sorted by row.
using AccumulateTileFn = void (*)(const ColumnView& w, int64_t n_begin, int64_t n_end, uint64_t* cursor,
                                  uint32_t row_end, const float* t, int64_t ldt, uint32_t row_base, int64_t batch,
                                  float alpha, float* yt, int64_t ldy);

// y[r * ldy + n] += alpha * sum_i value[i] * t[r * ldt + row[i]] over the entries i of columns
// n in [n_begin, n_end), for rows r < rows: the unified entries of a few activation rows, whose
// signed sums t are small enough to stay in L1. SIMD variants need rows < 2^31 (gathers).
using SpmvAccumulateFn = void (*)(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* t, int64_t ldt,
                                  int64_t rows, float alpha, float* y, int64_t ldy);

void SpmvAccumulateScalar(const ColumnView&, int64_t, int64_t, const float*, int64_t, int64_t, float, float*, int64_t);
void SpmvAccumulateAvx512(const ColumnView&, int64_t, int64_t, const float*, int64_t, int64_t, float, float*, int64_t);
void SpmvAccumulateAvx2(const ColumnView&, int64_t, int64_t, const float*, int64_t, int64_t, float, float*, int64_t);
void SignedSumsRowsScalar(const SignedSumView&, int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t);
void SignedSumsRowsAvx512(const SignedSumView&, int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t);
void SignedSumsRowsAvx2(const SignedSumView&, int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t);
void AccumulateTileScalar(const ColumnView&, int64_t, int64_t, uint64_t*, uint32_t, const float*, int64_t, uint32_t,
                          int64_t, float, float*, int64_t);
void AccumulateTileAvx512(const ColumnView&, int64_t, int64_t, uint64_t*, uint32_t, const float*, int64_t, uint32_t,
                          int64_t, float, float*, int64_t);
void AccumulateTileAvx2(const ColumnView&, int64_t, int64_t, uint64_t*, uint32_t, const float*, int64_t, uint32_t,
                        int64_t, float, float*, int64_t);

}  // namespace lsc
