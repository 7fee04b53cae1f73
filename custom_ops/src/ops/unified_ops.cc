#include "ops/unified_ops.h"

#include <algorithm>
#include <cstring>

#include "kernels/unified.h"
#include "ops/op_util.h"

namespace lsc {
namespace {

// Thread scratch slots of these passes (the ops use slots below 16).
enum Scratch { kScratchSums = 16, kScratchCursor };

// Output pixels per tile of the convolution pass, and the most floats of signed sums per tile.
constexpr int64_t kPixelTile = 64;
constexpr int64_t kSumFloats = int64_t{1} << 14;

// The SIMD variants gather with 32-bit indices.
SignedSumsRowsFn SumsKernel(int64_t K) {
  return K + kMaxSignedSumLength < (int64_t{1} << 31) ? SelectUnifiedKernels().signed_sums_rows
                                                      : SignedSumsRowsScalar;
}

// t[e - e_begin][q] for the output pixels [first, first + count) of one image: sum e over the
// taps first[e] .. first[e] + length[e] - 1 (channel, kernel row, kernel column) with signs.
void ConvSignedSums(const SignedSumView& s, int64_t e_begin, int64_t e_end, const float* image,
                    const ConvGeometry& g, int64_t first, int64_t count, float* t, int64_t ldt) {
  const int64_t taps = g.kernel_h * g.kernel_w;
  for (int64_t e = e_begin; e < e_end; ++e) {
    float* out = t + (e - e_begin) * ldt;
    std::fill(out, out + count, 0.0f);
    for (uint32_t tap = 0; tap < s.length[e]; ++tap) {
      const int64_t k = static_cast<int64_t>(s.first[e]) + tap;
      const int64_t c = k / taps, i = k % taps / g.kernel_w, j = k % g.kernel_w;
      const float* plane = image + c * g.height * g.width;
      const bool negative = (s.signs[e] >> tap) & 1;
      int64_t oh = first / g.out_width, ow = first % g.out_width;
      for (int64_t q = 0; q < count;) {
        const int64_t run = std::min(count - q, g.out_width - ow);
        const int64_t ih = oh * g.stride_h - g.pad_top + i * g.dilation_h;
        if (ih >= 0 && ih < g.height) {
          // Pixels t of the run read input column iw0 + t * stride_w; keep those inside [0, W).
          const int64_t iw0 = ow * g.stride_w - g.pad_left + j * g.dilation_w;
          const int64_t lo = iw0 >= 0 ? 0 : (-iw0 + g.stride_w - 1) / g.stride_w;
          const int64_t hi = iw0 >= g.width ? 0 : std::min(run, (g.width - 1 - iw0) / g.stride_w + 1);
          const float* in = plane + ih * g.width;
          float* dst = out + q;
          if (g.stride_w == 1) {
            if (negative) {
              for (int64_t p = lo; p < hi; ++p) dst[p] -= in[iw0 + p];
            } else {
              for (int64_t p = lo; p < hi; ++p) dst[p] += in[iw0 + p];
            }
          } else {
            const float sign = negative ? -1.0f : 1.0f;
            for (int64_t p = lo; p < hi; ++p) dst[p] += sign * in[iw0 + p * g.stride_w];
          }
        }
        q += run;
        ow = 0;
        ++oh;
      }
    }
  }
}

}  // namespace

namespace {

constexpr int64_t kColumnBlock = 32;
constexpr int64_t kSumsPerTask = 256;

// y += alpha * (unified part) for a row or two: their signed sums (small, in L1), then the
// entries' accumulating column dot products.
Status UnifiedRows(OrtKernelContext* context, const UnifiedLayout& u, const UnifiedKernelSet& unified_kernels,
                   const float* a, int64_t M, float alpha, float* y) {
  const int64_t K = u.K, N = u.N, E = u.count();
  float* t = ThreadScratch(kScratchSums, static_cast<size_t>(M * E));
  const SignedSumView sums = u.sums();
  const SignedSumsRowsFn signed_sums = SumsKernel(K);
  const int64_t per_task = 4 * kSumsPerTask;
  LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>((E + per_task - 1) / per_task), [&](size_t task) {
    const int64_t lo = static_cast<int64_t>(task) * per_task, hi = std::min(E, lo + per_task);
    signed_sums(sums, lo, hi, a, K, M, t + lo, E);
  }));
  const SpmvAccumulateFn accumulate = E < (int64_t{1} << 31) ? unified_kernels.spmv_accumulate : SpmvAccumulateScalar;
  const ColumnView entries = u.columns.view();
  const int64_t per_block = 4 * kColumnBlock;
  return ParallelFor(context, static_cast<size_t>((N + per_block - 1) / per_block), [&](size_t task) {
    const int64_t n0 = static_cast<int64_t>(task) * per_block;
    accumulate(entries, n0, std::min(N, n0 + per_block), t, E, M, alpha, y, N);
  });
}

}  // namespace

Status AddUnifiedMatMul(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M, float alpha,
                        float* y) {
  const UnifiedLayout* unified = weight.unified();
  if (unified == nullptr || unified->count() == 0) return Status();
  const UnifiedKernelSet& unified_kernels = SelectUnifiedKernels();
  const int64_t K = weight.K(), N = weight.N();
  for (int64_t m0 = 0; m0 < M; m0 += kUnifiedMatMulRows) {
    const int64_t rows = std::min(kUnifiedMatMulRows, M - m0);
    LSC_RETURN_IF_ERROR(UnifiedRows(context, *unified, unified_kernels, a + m0 * K, rows, alpha, y + m0 * N));
  }
  return Status();
}

Status AddUnifiedConv(OrtKernelContext* context, const PackedWeight& weight, const ConvGeometry& g, const float* x,
                      float* y) {
  const UnifiedLayout* unified = weight.unified();
  if (unified == nullptr || unified->count() == 0) return Status();
  const AccumulateTileFn accumulate = SelectUnifiedKernels().accumulate_tile;
  const ColumnView view = unified->columns.view();
  const SignedSumView sums = unified->sums();
  const int64_t M = g.out_channels, pixels = g.out_height * g.out_width, E = unified->count();
  const int64_t image = g.channels * g.height * g.width;
  const int64_t runs = (pixels + kPixelTile - 1) / kPixelTile;
  const int64_t per_chunk = std::max<int64_t>(1, std::min(E, kSumFloats / kPixelTile));
  return ParallelFor(context, static_cast<size_t>(g.batch * runs), [&](size_t item) {
    const int64_t b = static_cast<int64_t>(item) / runs, run = static_cast<int64_t>(item) % runs;
    const int64_t first = run * kPixelTile, count = std::min(kPixelTile, pixels - first);
    float* t = ThreadScratch(kScratchSums, static_cast<size_t>(per_chunk * kPixelTile));
    uint64_t* cursor = ThreadScratch<uint64_t>(kScratchCursor, static_cast<size_t>(M));
    std::copy(view.ptr, view.ptr + M, cursor);
    for (int64_t e0 = 0; e0 < E; e0 += per_chunk) {
      const int64_t e1 = std::min(E, e0 + per_chunk);
      ConvSignedSums(sums, e0, e1, x + b * image, g, first, count, t, kPixelTile);
      accumulate(view, 0, M, cursor, static_cast<uint32_t>(e1), t, kPixelTile, static_cast<uint32_t>(e0), count, 1.0f,
                 y + b * M * pixels + first, pixels);
    }
  });
}

}  // namespace lsc
