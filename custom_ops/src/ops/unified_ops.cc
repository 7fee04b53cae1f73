#include "ops/unified_ops.h"

#include <algorithm>
#include <cstring>

#include "kernels/unified.h"
#include "ops/op_util.h"

namespace lsc {
namespace {

// Thread scratch slots of these passes (the ops use slots below 16).
enum Scratch { kScratchExtended = 16, kScratchSums, kScratchCursor, kScratchAt, kScratchYt, kScratchOffsets };

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

// As LSCMatMul's SmallBatch: rows up to which the windowed layout (or column dot products) runs.
constexpr int64_t kWindowedBatch = 12;
constexpr int64_t kColumnsBatch = 3;
constexpr int64_t kColumnBlock = 32;
// Floats of transposed signed sums per chunk of the large-batch pass (256 KB: stays in L2).
constexpr int64_t kChunkFloats = int64_t{1} << 16;
constexpr int64_t kSumsPerTask = 256;

const UnifiedLayout& SmallBatchLayout(const PackedWeight& weight, const KernelSet& kernels) {
  const UnifiedLayout& u = *weight.unified();
  std::call_once(u.small_batch_once, [&] {
    u.small_batch_status = MergeUnifiedRows(weight.columns(), u, &u.merged);
    if (u.small_batch_status.ok() && kernels.spmv_windowed != nullptr &&
        WindowedLayoutWorthwhile(u.merged, kernels.lanes, kernels.window)) {
      BuildWindowedLayout(u.merged, kernels.lanes, kernels.window, &u.merged_windowed);
      u.has_merged_windowed = true;
    }
  });
  return u;
}

Status SmallBatch(OrtKernelContext* context, const UnifiedLayout& u, const KernelSet& kernels, const float* a,
                  int64_t M, int64_t K, float alpha, const float* bias, float* y) {
  const int64_t N = u.merged.N, E = u.count();
  const SignedSumView sums = u.sums();
  const SignedSumsRowsFn signed_sums = SumsKernel(K);
  if (u.has_merged_windowed) {
    const WindowedLayout& layout = u.merged_windowed;
    const WindowedView view = layout.view();
    const int64_t ldx = layout.windows * layout.window + layout.window;  // padded, zero beyond K + E
    float* x = ThreadScratch(kScratchExtended, static_cast<size_t>(std::min<int64_t>(M, kWindowedRows) * ldx));
    const int64_t groups_per_task = std::max<int64_t>(1, layout.groups / 64);
    const int64_t tasks = (layout.groups + groups_per_task - 1) / groups_per_task;
    for (int64_t m0 = 0; m0 < M; m0 += kWindowedRows) {
      const int64_t count = std::min<int64_t>(kWindowedRows, M - m0);
      for (int64_t r = 0; r < count; ++r) {
        std::memcpy(x + r * ldx, a + (m0 + r) * K, static_cast<size_t>(K) * sizeof(float));
        std::fill(x + r * ldx + K + E, x + (r + 1) * ldx, 0.0f);
      }
      signed_sums(sums, 0, E, a + m0 * K, K, count, x + K, ldx);
      LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tasks), [&](size_t t) {
        const int64_t g0 = static_cast<int64_t>(t) * groups_per_task;
        kernels.spmv_windowed(view, g0, std::min(layout.groups, g0 + groups_per_task), x, ldx, count, alpha, bias,
                              y + m0 * N, N);
      }));
    }
    return Status();
  }
  const ColumnView view = u.merged.view();
  float* x = ThreadScratch(kScratchExtended, static_cast<size_t>(K + E));
  const int64_t tasks = (N + kColumnBlock - 1) / kColumnBlock;
  for (int64_t m = 0; m < M; ++m) {
    std::memcpy(x, a + m * K, static_cast<size_t>(K) * sizeof(float));
    signed_sums(sums, 0, E, a + m * K, K, 1, x + K, K + E);
    LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tasks), [&](size_t t) {
      const int64_t n0 = static_cast<int64_t>(t) * kColumnBlock;
      kernels.spmv_columns(view, n0, std::min(N, n0 + kColumnBlock), x, alpha, bias, y + m * N);
    }));
  }
  return Status();
}

// Tiles of up to batch_tile rows, as LSCMatMul's LargeBatch: At = A_tile^T [K, L], then
// Yt [N, L] = alpha * (W_plain^T At + W_unified^T T) + bias with T = the signed sums of At, made
// chunk by chunk, and Y_tile = Yt^T.
Status LargeBatch(OrtKernelContext* context, const PackedWeight& weight, const KernelSet& kernels,
                  const UnifiedKernelSet& unified_kernels, const float* a, int64_t M, float alpha, const float* bias,
                  float* y) {
  const UnifiedLayout& u = *weight.unified();
  const int64_t K = weight.K(), N = weight.N(), T = kernels.batch_tile, E = u.count();
  const int64_t tiles = (M + T - 1) / T;
  const int64_t L = tiles == 1 ? std::min(T, (M + 15) / 16 * 16) : T;
  float* at = ThreadScratch(kScratchAt, static_cast<size_t>(tiles * K * L));
  float* yt = ThreadScratch(kScratchYt, static_cast<size_t>(tiles * N * L));
  const int64_t chunk = std::max<int64_t>(1, std::min(E, kChunkFloats / L));
  float* tt = ThreadScratch(kScratchSums, static_cast<size_t>(chunk * L));
  uint64_t* cursor = ThreadScratch<uint64_t>(kScratchCursor, static_cast<size_t>(N));
  int64_t* offsets = ThreadScratch<int64_t>(kScratchOffsets, static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) offsets[k] = k * L;
  auto rows_in = [&](int64_t tile) { return std::min(T, M - tile * T); };
  LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tiles), [&](size_t t) {
    const int64_t tile = static_cast<int64_t>(t);
    kernels.transpose(a + tile * T * K, K, rows_in(tile), K, at + tile * K * L, L);
  }));
  const ColumnView plain = weight.columns().view(), entries = u.columns.view();
  const SignedSumView sums = u.sums();
  const int64_t blocks = (N + kColumnBlock - 1) / kColumnBlock;
  LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tiles * blocks), [&](size_t item) {
    const int64_t tile = static_cast<int64_t>(item) / blocks, n0 = static_cast<int64_t>(item) % blocks * kColumnBlock;
    kernels.spmm_tile(plain, n0, std::min(N, n0 + kColumnBlock), at + tile * K * L, offsets, rows_in(tile), alpha,
                      bias, yt + tile * N * L, L);
  }));
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const float* at_tile = at + tile * K * L;
    float* yt_tile = yt + tile * N * L;
    const int64_t rows = rows_in(tile);
    std::copy(entries.ptr, entries.ptr + N, cursor);
    for (int64_t e0 = 0; e0 < E; e0 += chunk) {
      const int64_t e1 = std::min(E, e0 + chunk);
      const int64_t tasks = (e1 - e0 + kSumsPerTask - 1) / kSumsPerTask;
      LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tasks), [&](size_t t) {
        const int64_t lo = e0 + static_cast<int64_t>(t) * kSumsPerTask, hi = std::min(e1, lo + kSumsPerTask);
        unified_kernels.signed_sums_columns(sums, lo, hi, at_tile, L, rows, tt + (lo - e0) * L, L);
      }));
      LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(blocks), [&](size_t block) {
        const int64_t n0 = static_cast<int64_t>(block) * kColumnBlock;
        unified_kernels.accumulate_tile(entries, n0, std::min(N, n0 + kColumnBlock), cursor, static_cast<uint32_t>(e1),
                                        tt, L, static_cast<uint32_t>(e0), rows, alpha, yt_tile, L);
      }));
    }
  }
  return ParallelFor(context, static_cast<size_t>(tiles), [&](size_t t) {
    const int64_t tile = static_cast<int64_t>(t);
    kernels.transpose(yt + tile * N * L, L, N, rows_in(tile), y + tile * T * N, N);
  });
}

}  // namespace

Status UnifiedMatMul(OrtKernelContext* context, const PackedWeight& weight, const KernelSet& kernels, const float* a,
                     int64_t M, float alpha, const float* bias, float* y) {
  const int64_t K = weight.K();
  if (M <= kWindowedBatch) {
    const UnifiedLayout& u = SmallBatchLayout(weight, kernels);
    LSC_RETURN_IF_ERROR(u.small_batch_status);
    if (M <= (u.has_merged_windowed ? kWindowedBatch : kColumnsBatch)) {
      return SmallBatch(context, u, kernels, a, M, K, alpha, bias, y);
    }
  }
  return LargeBatch(context, weight, kernels, SelectUnifiedKernels(), a, M, alpha, bias, y);
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
