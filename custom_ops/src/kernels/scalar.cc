// Portable kernels: the fallback on every CPU and the reference for the SIMD variants.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/layouts.h"

namespace lsc {

void SpmmTileScalar(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* base, const int64_t* rows,
                    int64_t batch, float alpha, const float* bias, float* yt, int64_t ldy) {
  float acc[64];
  for (int64_t n = n_begin; n < n_end; ++n) {
    std::fill(acc, acc + batch, 0.0f);
    for (uint64_t i = w.ptr[n]; i < w.ptr[n + 1]; ++i) {
      const float v = w.value[i];
      const float* row = base + rows[w.row[i]];
      for (int64_t b = 0; b < batch; ++b) acc[b] += v * row[b];
    }
    const float beta = bias ? bias[n] : 0.0f;
    float* out = yt + n * ldy;
    for (int64_t b = 0; b < batch; ++b) out[b] = alpha * acc[b] + beta;
  }
}

void SpmvColumnsScalar(const ColumnView& w, int64_t n_begin, int64_t n_end, const float* x, float alpha,
                       const float* bias, float* y) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    uint64_t i = w.ptr[n];
    const uint64_t end = w.ptr[n + 1];
    for (; i + 4 <= end; i += 4) {
      a0 += w.value[i] * x[w.row[i]];
      a1 += w.value[i + 1] * x[w.row[i + 1]];
      a2 += w.value[i + 2] * x[w.row[i + 2]];
      a3 += w.value[i + 3] * x[w.row[i + 3]];
    }
    for (; i < end; ++i) a0 += w.value[i] * x[w.row[i]];
    y[n] = alpha * ((a0 + a1) + (a2 + a3)) + (bias ? bias[n] : 0.0f);
  }
}

void GatherScalar(const float* src, const int64_t* row_offset, int64_t rows, const GatherView& view, float* dst,
                  int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = src + row_offset[r];
    float* out = dst + r * ldd;
    if (view.lane_offset != nullptr) {
      for (int64_t q = 0; q < view.lanes; ++q) out[q] = row[view.lane_offset[q]];
      continue;
    }
    for (int64_t i = 0; i < view.run_count; ++i) {
      const GatherRun& run = view.runs[i];
      for (int64_t t = 0; t < run.count; ++t) out[run.lane + t] = row[run.offset + view.stride * t];
    }
  }
}

void LayerNormScalar(float* y, int64_t rows, int64_t n, const float* scale, const float* bias, float epsilon) {
  for (int64_t r = 0; r < rows; ++r) {  // (double sums: the fallback is also the reference)
    float* row = y + r * n;
    double sum = 0.0, squares = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += row[i];
    const double mean = sum / static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) squares += (row[i] - mean) * (row[i] - mean);
    const double rstd = 1.0 / std::sqrt(squares / static_cast<double>(n) + epsilon);
    for (int64_t i = 0; i < n; ++i) {
      row[i] = static_cast<float>((row[i] - mean) * rstd) * scale[i] + (bias ? bias[i] : 0.0f);
    }
  }
}

void AttentionRowsScalar(const AttentionHead& a, int64_t r0, int64_t rows, float* scores) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = r0 + r;
    float* s = scores + r * a.T;
    std::fill(s, s + a.T, 0.0f);
    for (int64_t h = 0; h < a.H; ++h) {  // j innermost: vectorizable, K read row by row
      const float qh = a.q[i * a.H + h];
      const float* kh = a.k + h * a.T;
      for (int64_t j = 0; j < a.T; ++j) s[j] += qh * kh[j];
    }
    const float* bias = a.bias ? a.bias + i * a.bias_row : nullptr;
    float top = -INFINITY;
    bool nan = false;
    for (int64_t j = 0; j < a.T; ++j) {
      s[j] = s[j] * a.scale + (bias ? bias[j * a.bias_col] : 0.0f);
      nan |= std::isnan(s[j]);
      top = std::max(top, s[j]);
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < a.T; ++j) {
      const float x = s[j] - top;  // NaN when top is infinite and s[j] too
      s[j] = x < -87.0f ? 0.0f : std::exp(x);
      sum += s[j];
    }
    float* o = a.o + i * a.Hv;
    std::fill(o, o + a.Hv, 0.0f);
    for (int64_t j = 0; j < a.T; ++j) {
      const float p = s[j];
      const float* vj = a.v + j * a.Hv;
      for (int64_t d = 0; d < a.Hv; ++d) o[d] += p * vj[d];
    }
    const float inv = nan || std::isinf(top) ? NAN : 1.0f / sum;
    for (int64_t d = 0; d < a.Hv; ++d) o[d] *= inv;
  }
}

void GeluScalar(float* y, int64_t count) {
  // (erfc keeps the negative tail exact; erfc(+inf) = 0 makes Gelu(-inf) = -inf * 0 = NaN)
  for (int64_t i = 0; i < count; ++i) y[i] = 0.5f * y[i] * std::erfc(-y[i] * 0.70710678118654752f);
}

void TransposeScalar(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  constexpr int64_t kTile = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) dst[c * ldd + r] = src[r * lds + c];
      }
    }
  }
}

}  // namespace lsc

namespace lsc {
namespace {

inline float Apply(const Epilogue& e, int64_t n, float sum, float residual = 0.0f) {
  const float y = e.alpha * sum + (e.bias ? e.bias[n] : 0.0f) + residual;
  return e.relu && y < 0.0f ? 0.0f : y;  // NaN stays NaN
}

}  // namespace

void SpmmTiledScalar(const TiledView& w, int64_t n_begin, int64_t n_end, const float* base, int64_t batch,
                     const Epilogue& epilogue, float* yt, int64_t ldy) {
  for (int64_t c0 = n_begin; c0 < n_end; c0 += w.chunk) {
    const int64_t c1 = c0 + w.chunk < n_end ? c0 + w.chunk : n_end;
    for (int64_t b = 0; b < w.blocks; ++b) {
      const uint64_t* start = w.start + b * w.N;
      const int32_t* order = w.column + b * w.N;
      const bool first = b == 0 && !w.accumulate, last = b == w.blocks - 1 && !w.partial;
      for (int64_t i0 = c0; i0 < c1; ++i0) {
        const int64_t n = order[i0];
        float acc[64];
        float* out = yt + n * ldy;
        for (int64_t l = 0; l < batch; ++l) acc[l] = first ? 0.0f : out[l];
        WithTiledOffsets(w, [&](const auto* offset) {
          for (uint64_t i = start[i0]; i < start[i0 + 1]; ++i) {
            const float v = w.value[i];
            const float* row = base + offset[i];
            for (int64_t l = 0; l < batch; ++l) acc[l] += v * row[l];
          }
        });
        const float* residual = epilogue.residual ? epilogue.residual + n * ldy : nullptr;
        for (int64_t l = 0; l < batch; ++l) {
          out[l] = !last ? acc[l] : residual ? Apply(epilogue, n, acc[l], residual[l]) : Apply(epilogue, n, acc[l]);
        }
      }
    }
  }
}

void SpmvSlicedScalar(const SlicedView& w, int64_t g_begin, int64_t g_end, const float* x, int64_t ldx,
                      int64_t rows, const Epilogue& epilogue, float* y, int64_t ldy) {
  const size_t width = w.value_type == SlicedValue::kFloat32 ? 4 : w.value_type == SlicedValue::kFloat16 ? 2 : 1;
  const ValueType type = w.value_type == SlicedValue::kFloat32   ? ValueType::kFloat32
                         : w.value_type == SlicedValue::kFloat16 ? ValueType::kFloat16
                                                                 : ValueType::kInt8;
  for (int64_t g = g_begin; g < g_end; ++g) {
    float acc[kSlicedRows][kSlicedLanes] = {};
    uint64_t index[kSlicedLanes] = {}, window = 0, packed = w.window ? w.value_start[g] : 0;
    for (uint64_t r = w.group_start[g]; r < w.group_start[g + 1]; ++r) {
      if (w.window) window += w.window[r];
      for (int j = 0; j < kSlicedLanes; ++j) {
        const uint64_t slot = r * kSlicedLanes + static_cast<uint64_t>(j);
        uint32_t step = 0, bits = 0;
        std::memcpy(&step, w.step + slot * static_cast<uint64_t>(w.step_bytes), static_cast<size_t>(w.step_bytes));
        if (w.window) {  // windowed slices: values of taken lanes only
          if (step == kIdleLane) continue;
          std::memcpy(&bits, w.value + packed++ * width, width);
          index[j] = window + step;
        } else {
          std::memcpy(&bits, w.value + slot * width, width);
          index[j] += step;
        }
        if (bits == 0) continue;
        const float v = ValueToFloat(type, bits, 1.0f);
        for (int64_t m = 0; m < rows; ++m) acc[m][j] += v * x[m * ldx + static_cast<int64_t>(index[j])];
      }
    }
    const Epilogue scaled{epilogue.alpha * w.scale, epilogue.bias, epilogue.relu, nullptr};
    for (int j = 0; j < kSlicedLanes; ++j) {
      const int32_t n = w.column[g * kSlicedLanes + j];
      if (n < 0) continue;
      for (int64_t m = 0; m < rows; ++m) y[m * ldy + n] = Apply(scaled, n, acc[m][j]);
    }
  }
}

}  // namespace lsc
