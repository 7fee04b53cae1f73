// Native tests of the compute kernels: every variant the CPU supports against a double-precision
// reference, on random sparse weights of many shapes (ctest; -DLSC_ORT_BUILD_TESTS=ON). Runs
// without onnxruntime, so it also runs cross-compiled (e.g. aarch64 under qemu for NEON).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "common/memory.h"
#include "kernels/kernels.h"
#include "kernels/layouts.h"
#include "kernels/sliced_layout.h"
#include "kernels/tiled_layout.h"
#include "random_columns.h"
#include "unified_kernel_test.h"

using namespace lsc;

namespace {

int failures = 0;

// Y[m][n] = alpha * sum_k A[m][k] W[k][n] + bias[n], in double.
std::vector<double> Reference(const ColumnLists& w, const std::vector<float>& a, int64_t M, float alpha,
                              const std::vector<float>& bias) {
  std::vector<double> y(static_cast<size_t>(M * w.N));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < w.N; ++n) {
      double sum = 0;
      for (uint64_t i = w.ptr[n]; i < w.ptr[n + 1]; ++i) sum += double(a[m * w.K + w.row[i]]) * w.value[i];
      y[m * w.N + n] = alpha * sum + bias[n];
    }
  }
  return y;
}

void Expect(const char* what, const KernelSet& set, int64_t K, int64_t N, int64_t M, const std::vector<float>& y,
            const std::vector<double>& expected) {
  for (size_t i = 0; i < expected.size(); ++i) {
    if (std::fabs(y[i] - expected[i]) > 1e-4 * (1 + std::fabs(expected[i]))) {
      std::printf("FAIL %s %s K=%lld N=%lld M=%lld at %zu: %g vs %g\n", set.name, what, (long long)K, (long long)N,
                  (long long)M, i, double(y[i]), expected[i]);
      ++failures;
      return;
    }
  }
}

// Y = relu?(alpha * A W + bias) in double, for the kernels with an epilogue.
std::vector<double> WithEpilogue(std::vector<double> y, bool relu) {
  if (relu) {
    for (double& v : y) v = v < 0 ? 0 : v;
  }
  return y;
}

// The tiled kernel on K-blocks of several sizes, with and without relu; the activation rows
// `lead` elements past the tile's base (0: 16-bit offsets; 2^16: 32-bit ones).
void TestTiled(const KernelSet& set, const ColumnLists& w, const std::vector<float>& a, int64_t M,
               const std::vector<float>& bias, const std::vector<double>& expected, int64_t lead) {
  const int64_t K = w.K, N = w.N, T = set.tiled_tile;
  std::vector<int64_t> offsets(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) offsets[k] = lead + k * T;
  std::vector<float> tile(static_cast<size_t>(lead + K * T) + 1), yt(static_cast<size_t>(N * T)),
      y(static_cast<size_t>(M * N));
  const float* base = tile.data();
  float* at = tile.data() + lead;
  for (int64_t rows_per_block : {int64_t{1} << 30, int64_t{7}, int64_t{1}}) {
    TiledLayout layout;
    const int64_t chunk = rows_per_block == 7 ? 5 : rows_per_block == 1 ? 1 : 1 << 20;
    if (!BuildTiledLayout(w, offsets.data(), UnitBlocks(K, 1, rows_per_block), chunk, &layout).ok()) {
      std::printf("FAIL %s tiled layout K=%lld N=%lld\n", set.name, (long long)K, (long long)N);
      ++failures;
      return;
    }
    const bool narrow = lead + (K - 1) * T <= 0xFFFF;
    if (w.nnz() > 0 && layout.offset16.empty() == narrow) {
      std::printf("FAIL %s tiled layout K=%lld lead=%lld: %s offsets\n", set.name, (long long)K, (long long)lead,
                  narrow ? "32-bit" : "16-bit");
      ++failures;
    }
    for (bool relu : {false, true}) {
      const Epilogue e{0.5f, bias.data(), relu};
      for (int64_t m0 = 0; m0 < M; m0 += T) {
        const int64_t rows = std::min(T, M - m0);
        set.transpose(a.data() + m0 * K, K, rows, K, at, T);
        const std::vector<int64_t> bounds = layout.TaskBounds(3);  // tasks of whole chunks
        for (size_t t = 0; t + 1 < bounds.size(); ++t) {
          set.spmm_tiled(layout.view(), bounds[t], bounds[t + 1], base, rows, e, yt.data(), T);
        }
        set.transpose(yt.data(), T, N, rows, y.data() + m0 * N, N);
      }
      Expect(relu ? "spmm_tiled relu" : "spmm_tiled", set, K, N, M, y, WithEpilogue(expected, relu));
      // With a residual (at the output tile's own index), added before the activation.
      std::vector<float> residual(static_cast<size_t>(N * T));
      for (size_t i = 0; i < residual.size(); ++i) residual[i] = 0.25f * float(int(i % 13) - 6);
      std::vector<double> with_residual = expected;
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t n = 0; n < N; ++n) with_residual[m * N + n] += residual[n * T + m % T];
      }
      const Epilogue er{0.5f, bias.data(), relu, residual.data()};
      for (int64_t m0 = 0; m0 < M; m0 += T) {
        const int64_t rows = std::min(T, M - m0);
        set.transpose(a.data() + m0 * K, K, rows, K, at, T);
        set.spmm_tiled(layout.view(), 0, N, base, rows, er, yt.data(), T);
        set.transpose(yt.data(), T, N, rows, y.data() + m0 * N, N);
      }
      Expect("spmm_tiled residual", set, K, N, M, y, WithEpilogue(with_residual, relu));
      // K-block by K-block (TiledLayout::blocks_view): the first adds to nothing, the last alone
      // applies the epilogue; the same offsets read from one shared At.
      for (int64_t m0 = 0; m0 < M; m0 += T) {
        const int64_t rows = std::min(T, M - m0);
        set.transpose(a.data() + m0 * K, K, rows, K, at, T);
        const int64_t blocks = layout.blocks;
        for (int64_t b = 0; b < blocks; ++b) {
          set.spmm_tiled(layout.blocks_view(b, b + 1, b > 0, b + 1 < blocks), 0, N, base, rows, e, yt.data(), T);
        }
        set.transpose(yt.data(), T, N, rows, y.data() + m0 * N, N);
      }
      Expect(relu ? "spmm_tiled by blocks relu" : "spmm_tiled by blocks", set, K, N, M, y, WithEpilogue(expected, relu));
    }
  }
}

// The sliced kernel one or two rows at a time, on values stored as `stored`.
// Rows of `a` [M, K] at a stride of at least kSlicedWindow, zero past K, as windowed slices read them.
std::vector<float> WindowPadded(const std::vector<float>& a, int64_t M, int64_t K, int64_t* ldx) {
  *ldx = std::max<int64_t>(K, kSlicedWindow);
  std::vector<float> x(static_cast<size_t>(M * *ldx), 0.0f);
  for (int64_t m = 0; m < M; ++m) std::copy(a.begin() + m * K, a.begin() + (m + 1) * K, x.begin() + m * *ldx);
  return x;
}

void TestSliced(const KernelSet& set, const ColumnLists& w, const std::vector<float>& a, int64_t M,
                const std::vector<float>& bias, const std::vector<double>& expected) {
  for (bool windowed : {false, true}) {
    const char* name = windowed ? "spmv_sliced windowed" : "spmv_sliced";
    SlicedLayout layout;
    if (!BuildSlicedLayout(w, &layout, windowed).ok()) {
      std::printf("FAIL %s %s layout\n", set.name, name);
      ++failures;
      return;
    }
    int64_t ldx = w.K;
    const std::vector<float> x = windowed ? WindowPadded(a, M, w.K, &ldx) : a;
    std::vector<float> y(static_cast<size_t>(M * w.N));
    for (bool relu : {false, true}) {
      const Epilogue e{0.5f, bias.data(), relu};
      for (int64_t m0 = 0; m0 < M; m0 += kSlicedRows) {
        set.spmv_sliced(layout.view(), 0, layout.groups, x.data() + m0 * ldx, ldx,
                        std::min<int64_t>(kSlicedRows, M - m0), e, y.data() + m0 * w.N, w.N);
      }
      Expect(relu ? "spmv_sliced relu" : name, set, w.K, w.N, M, y, WithEpilogue(expected, relu));
    }
    // Group ranges of 1, 2, 3, ... groups, as tasks split them (kernels read several groups side
    // by side: ranges that are not a multiple of that, starting anywhere).
    std::fill(y.begin(), y.end(), 0.0f);
    const Epilogue e{0.5f, bias.data(), false};
    for (int64_t m0 = 0; m0 < M; m0 += kSlicedRows) {
      for (int64_t g = 0, size = 1; g < layout.groups; g += size, ++size) {
        set.spmv_sliced(layout.view(), g, std::min(layout.groups, g + size), x.data() + m0 * ldx, ldx,
                        std::min<int64_t>(kSlicedRows, M - m0), e, y.data() + m0 * w.N, w.N);
      }
    }
    Expect(windowed ? "spmv_sliced windowed by group ranges" : "spmv_sliced by group ranges", set, w.K, w.N, M, y,
           expected);
  }
}

// Values rounded to float16 (or to scale * int8) and marked as stored so.
ColumnLists Stored(ColumnLists w, ValueType type) {
  w.stored = type;
  w.scale = type == ValueType::kInt8 ? 0.03125f : 1.0f;
  for (float& v : w.value) {
    if (type == ValueType::kInt8) {
      int q = static_cast<int>(std::lround(v / w.scale));
      q = std::max(-127, std::min(127, q == 0 ? 1 : q));
      v = ValueToFloat(type, static_cast<uint32_t>(q) & 0xFF, w.scale);
    } else if (type == ValueType::kFloat16) {
      v = ValueToFloat(type, HalfOf(std::fabs(v) < 1e-3f ? 0.5f : v), 1.0f);
    }
  }
  return w;
}

// A NaN or infinity in an activation reaches only the columns that store a weight for its row.
void TestNonFinite(const KernelSet& set) {
  std::mt19937 rng(11);
  const int64_t K = 300, N = 70, M = 2;
  const ColumnLists w = RandomColumns(K, N, 0.1, rng);
  std::vector<float> a(static_cast<size_t>(M * K), 1.0f), bias(static_cast<size_t>(N), 0.0f);
  a[5] = std::nanf("");
  a[K + 200] = INFINITY;
  std::vector<double> expected = Reference(w, a, M, 1.0f, bias);
  auto check = [&](const char* what, const std::vector<float>& y) {
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        const double e = expected[m * N + n];
        const float v = y[m * N + n];
        const bool same = std::isnan(e) ? std::isnan(v) : (std::isinf(e) ? v == e : std::fabs(v - e) < 1e-3);
        if (!same) {
          std::printf("FAIL %s %s non-finite activation at m=%lld n=%lld: %g vs %g\n", set.name, what, (long long)m,
                      (long long)n, double(v), e);
          ++failures;
          return;
        }
      }
    }
  };
  const Epilogue e{1.0f, bias.data(), false};
  std::vector<float> y(static_cast<size_t>(M * N));
  for (bool windowed : {false, true}) {
    SlicedLayout sliced;
    BuildSlicedLayout(w, &sliced, windowed);
    int64_t ldx = K;
    const std::vector<float> x = windowed ? WindowPadded(a, M, K, &ldx) : a;
    set.spmv_sliced(sliced.view(), 0, sliced.groups, x.data(), ldx, M, e, y.data(), N);
    check(windowed ? "spmv_sliced windowed" : "spmv_sliced", y);
  }
  const int64_t T = set.tiled_tile;
  std::vector<int64_t> offsets(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) offsets[k] = k * T;
  TiledLayout tiled;
  BuildTiledLayout(w, offsets.data(), UnitBlocks(K, 1, 64), 16, &tiled);
  std::vector<float> at(static_cast<size_t>(K * T)), yt(static_cast<size_t>(N * T));
  set.transpose(a.data(), K, M, K, at.data(), T);
  set.spmm_tiled(tiled.view(), 0, N, at.data(), M, e, yt.data(), T);
  set.transpose(yt.data(), T, N, M, y.data(), N);
  check("spmm_tiled", y);
  if (set.spmv_windowed != nullptr) {
    WindowedLayout layout;
    BuildWindowedLayout(w, set.lanes, set.window, &layout);
    const int64_t ldx = WindowedStride(layout);
    std::vector<float> x(static_cast<size_t>(M * ldx));
    for (int64_t m = 0; m < M; ++m) StageWindowedRow(layout, a.data() + m * K, x.data() + m * ldx);
    set.spmv_windowed(layout.view(), 0, layout.groups, x.data(), ldx, M, 1.0f, bias.data(), y.data(), N);
    check("spmv_windowed", y);
  }
}

// gather against its definition: runs of strides 1, 2 and 3, long and short (vgatherdps), over
// lanes that end mid-vector; lanes no run covers must keep their value.
void TestGather(const KernelSet& set) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::vector<float> src(4096);
  for (float& v : src) v = normal(rng);
  const int64_t row_offset[] = {0, 700, 13, 2048};
  for (int64_t stride : {1, 2, 3}) {
    for (int64_t run_length : {3, 7, 16, 28, 50}) {
      for (int64_t lanes : {1, 17, 49, 64, 100, 128}) {
        std::vector<GatherRun> runs;
        std::vector<int32_t> lane_offset;
        for (int64_t q = 0; q < lanes; q += run_length) {
          const int64_t count = std::min(run_length, lanes - q);
          const int32_t offset = static_cast<int32_t>(q * 5);
          runs.push_back(GatherRun{static_cast<int32_t>(q), static_cast<int32_t>(count), offset});
          for (int64_t t = 0; t < count; ++t) lane_offset.push_back(static_cast<int32_t>(offset + stride * t));
        }
        const GatherView view{lanes, lane_offset.data(), runs.data(), static_cast<int64_t>(runs.size()), stride};
        const int64_t ldd = 144;
        std::vector<float> dst(4 * ldd, -7.0f);
        set.gather(src.data(), row_offset, 4, view, dst.data(), ldd);
        for (int64_t r = 0; r < 4; ++r) {
          for (int64_t q = 0; q < ldd; ++q) {
            const float want = q < lanes ? src[row_offset[r] + lane_offset[q]] : -7.0f;
            if (dst[r * ldd + q] != want) {
              std::printf("FAIL %s gather stride %lld run %lld lanes %lld at row %lld lane %lld\n", set.name,
                          (long long)stride, (long long)run_length, (long long)lanes, (long long)r, (long long)q);
              ++failures;
              return;
            }
          }
        }
      }
    }
  }
}

// gelu against x / 2 * erfc(-x / sqrt(2)) in double: relative error 5e-7 (1 + x^2) on a fine
// grid of [-16, 16] (a float x / sqrt(2) alone costs about x^2 1e-7 in the far tail), exact
// non-finite cases, and a count that ends mid-vector.
void TestGelu(const KernelSet& set) {
  std::vector<float> x;
  for (int i = -16000; i <= 16000; ++i) x.push_back(static_cast<float>(i) / 1000.0f);
  for (float v : {1e-30f, -1e-30f, 3e38f, -3e38f, INFINITY, -INFINITY, NAN}) x.push_back(v);
  std::vector<float> y = x;
  set.gelu(y.data(), static_cast<int64_t>(y.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    const double want = std::isinf(v) ? (v > 0 ? v : NAN) : 0.5 * v * std::erfc(-v / std::sqrt(2.0));
    const bool ok = std::isnan(want) ? std::isnan(y[i])
                                     : std::fabs(y[i] - want) <= 5e-7 * (1 + v * v) * std::fabs(want) + 1e-35 || y[i] == want;
    if (!ok) {
      std::printf("FAIL %s gelu(%.9g) = %.9g, expected %.9g\n", set.name, v, double(y[i]), want);
      ++failures;
      return;
    }
  }
}

// layer_norm against a two-pass double computation: row lengths around the vector widths, with and
// without a bias, rows offset by a large mean (which one-pass sums of squares would lose).
void TestLayerNorm(const KernelSet& set) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  for (int64_t n : {1, 7, 16, 31, 32, 33, 70, 384, 1000}) {
    const int64_t rows = 3;
    std::vector<float> y(static_cast<size_t>(rows * n)), scale(static_cast<size_t>(n)), bias(static_cast<size_t>(n));
    for (size_t i = 0; i < y.size(); ++i) y[i] = normal(rng) + (i / n == 2 ? 1000.0f : 0.0f);
    for (float& v : scale) v = normal(rng);
    for (float& v : bias) v = normal(rng);
    for (const float* b : {static_cast<const float*>(bias.data()), static_cast<const float*>(nullptr)}) {
      std::vector<float> out = y;
      set.layer_norm(out.data(), rows, n, scale.data(), b, 1e-5f);
      for (int64_t r = 0; r < rows; ++r) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < n; ++i) mean += y[r * n + i];
        mean /= n;
        for (int64_t i = 0; i < n; ++i) var += (y[r * n + i] - mean) * (y[r * n + i] - mean);
        const double rstd = 1 / std::sqrt(var / n + 1e-5);
        for (int64_t i = 0; i < n; ++i) {
          const double want = (y[r * n + i] - mean) * rstd * scale[i] + (b ? b[i] : 0.0);
          if (std::fabs(out[r * n + i] - want) > 2e-4 * (1 + std::fabs(want))) {
            std::printf("FAIL %s layer_norm n=%lld row %lld [%lld] = %.9g, expected %.9g\n", set.name,
                        static_cast<long long>(n), static_cast<long long>(r), static_cast<long long>(i),
                        double(out[r * n + i]), want);
            ++failures;
            return;
          }
        }
      }
    }
  }
}

// attention_rows against softmax and products in double: shapes around every vector width and
// register tile, a bias by row and by key, and row blocks that start inside the queries.
void TestAttention(const KernelSet& set) {
  std::mt19937 rng(13);
  std::normal_distribution<float> normal;
  const int64_t shapes[][4] = {{1, 1, 1, 1}, {5, 7, 3, 9}, {17, 65, 32, 32}, {9, 200, 16, 48}, {3, 130, 64, 17}};
  for (const auto& shape : shapes) {
    const int64_t S = shape[0], T = shape[1], H = shape[2], Hv = shape[3];
    std::vector<float> q(static_cast<size_t>(S * H)), k(static_cast<size_t>(H * T)), v(static_cast<size_t>(T * Hv)),
        bias(static_cast<size_t>(S * T)), o(static_cast<size_t>(S * Hv)), scores(static_cast<size_t>(S * T));
    for (std::vector<float>* x : {&q, &k, &v, &bias}) {
      for (float& value : *x) value = normal(rng);
    }
    for (int64_t bias_col : {int64_t{1}, int64_t{0}, int64_t{-1}}) {  // -1: no bias
      const AttentionHead a{q.data(), k.data(), v.data(), bias_col < 0 ? nullptr : bias.data(),
                            bias_col == 1 ? T : 1, std::max<int64_t>(bias_col, 0), S, T, H, Hv, 0.3f, o.data()};
      const int64_t split = S / 2;  // two calls: rows [0, split) and [split, S)
      if (split > 0) set.attention_rows(a, 0, split, scores.data());
      set.attention_rows(a, split, S - split, scores.data());
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> x(static_cast<size_t>(T));
        double top = -INFINITY, sum = 0;
        for (int64_t j = 0; j < T; ++j) {
          double dot = 0;
          for (int64_t h = 0; h < H; ++h) dot += double(q[i * H + h]) * k[h * T + j];
          x[j] = dot * 0.3f + (a.bias ? a.bias[i * a.bias_row + j * a.bias_col] : 0.0f);
          top = std::max(top, x[j]);
        }
        for (double& e : x) sum += (e = std::exp(e - top));
        for (int64_t d = 0; d < Hv; ++d) {
          double want = 0;
          for (int64_t j = 0; j < T; ++j) want += x[j] / sum * v[j * Hv + d];
          if (std::fabs(o[i * Hv + d] - want) > 1e-5 * (1 + std::fabs(want))) {
            std::printf("FAIL %s attention_rows S=%lld T=%lld H=%lld Hv=%lld row %lld [%lld] = %.9g, expected %.9g\n",
                        set.name, static_cast<long long>(S), static_cast<long long>(T), static_cast<long long>(H),
                        static_cast<long long>(Hv), static_cast<long long>(i), static_cast<long long>(d),
                        double(o[i * Hv + d]), want);
            ++failures;
            return;
          }
        }
      }
    }
  }
}

// attention_rows on non-finite rows: a NaN score, an infinite one and a row of -inf give NaN rows
// (as Softmax); a row with all but 3 keys at -inf weighs those 3; a row of finite scores is finite.
void TestAttentionNonFinite(const KernelSet& set) {
  const int64_t S = 5, T = 21, H = 3, Hv = 18;
  std::vector<float> q(S * H, 0.5f), k(H * T), v(T * Hv), bias(S * T, 0.0f), o(S * Hv), scores(S * T);
  for (int64_t i = 0; i < H * T; ++i) k[i] = 0.01f * static_cast<float>(i % 7);
  for (int64_t i = 0; i < T * Hv; ++i) v[i] = static_cast<float>(i % 5);
  bias[0 * T + 4] = NAN;
  bias[1 * T + 20] = INFINITY;
  for (int64_t j = 0; j < T; ++j) bias[2 * T + j] = -INFINITY;
  for (int64_t j = 3; j < T; ++j) bias[3 * T + j] = -INFINITY;
  const AttentionHead a{q.data(), k.data(), v.data(), bias.data(), T, 1, S, T, H, Hv, 1.0f, o.data()};
  set.attention_rows(a, 0, S, scores.data());
  bool ok = true;
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t d = 0; d < Hv; ++d) ok &= std::isnan(o[i * Hv + d]);
  }
  for (int64_t d = 0; d < Hv; ++d) {
    double w[3], sum = 0, want = 0;
    for (int64_t j = 0; j < 3; ++j) {
      double dot = 0;
      for (int64_t h = 0; h < H; ++h) dot += 0.5 * k[h * T + j];
      sum += (w[j] = std::exp(dot));
    }
    for (int64_t j = 0; j < 3; ++j) want += w[j] / sum * v[j * Hv + d];
    ok &= std::fabs(o[3 * Hv + d] - want) <= 1e-5 * (1 + std::fabs(want)) && std::isfinite(o[4 * Hv + d]);
  }
  if (!ok) {
    std::printf("FAIL %s attention_rows on non-finite rows\n", set.name);
    ++failures;
  }
}

void TestVariant(const KernelSet& set) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  const int64_t shapes[][2] = {{1, 1}, {1, 17}, {17, 1}, {31, 33}, {32, 16}, {100, 37}, {257, 130}, {64, 300}};
  for (const auto& shape : shapes) {
    for (double density : {0.0, 0.1, 0.5, 1.0}) {
      const int64_t K = shape[0], N = shape[1];
      const ColumnLists w = RandomColumns(K, N, density, rng);
      std::vector<float> bias(static_cast<size_t>(N));
      for (float& b : bias) b = normal(rng);
      for (int64_t M : {1, 2, 3, 5, 8, 16, 17, 33, 64, 100}) {
        std::vector<float> a(static_cast<size_t>(M * K));
        for (float& v : a) v = normal(rng);
        const std::vector<double> expected = Reference(w, a, M, 0.5f, bias);
        // Batched: transpose, tile kernel, transpose back.
        const int64_t T = set.batch_tile;
        std::vector<float> at(static_cast<size_t>(K * T)), yt(static_cast<size_t>(N * T)), y(static_cast<size_t>(M * N));
        std::vector<int64_t> offsets(static_cast<size_t>(K));
        for (int64_t k = 0; k < K; ++k) offsets[k] = k * T;
        for (int64_t m0 = 0; m0 < M; m0 += T) {
          const int64_t rows = std::min(T, M - m0);
          set.transpose(a.data() + m0 * K, K, rows, K, at.data(), T);
          set.spmm_tile(w.view(), 0, N, at.data(), offsets.data(), rows, 0.5f, bias.data(), yt.data(), T);
          set.transpose(yt.data(), T, N, rows, y.data() + m0 * N, N);
        }
        Expect("spmm_tile", set, K, N, M, y, expected);
        // Row by row on column lists.
        for (int64_t m = 0; m < M; ++m) {
          set.spmv_columns(w.view(), 0, N, a.data() + m * K, 0.5f, bias.data(), y.data() + m * N);
        }
        Expect("spmv_columns", set, K, N, M, y, expected);
        TestTiled(set, w, a, M, bias, expected, 0);
        TestTiled(set, w, a, M, bias, expected, int64_t{1} << 16);
        TestSliced(set, w, a, M, bias, expected);
        if (set.spmv_windowed != nullptr) {
          WindowedLayout layout;
          BuildWindowedLayout(w, set.lanes, set.window, &layout);
          const int64_t ldx = WindowedStride(layout);
          std::vector<float> x(static_cast<size_t>(M * ldx), 0.0f);
          for (int64_t m = 0; m < M; ++m) StageWindowedRow(layout, a.data() + m * K, x.data() + m * ldx);
          for (int64_t m0 = 0; m0 < M; m0 += kWindowedRows) {
            set.spmv_windowed(layout.view(), 0, layout.groups, x.data() + m0 * ldx, ldx,
                              std::min<int64_t>(kWindowedRows, M - m0), 0.5f, bias.data(), y.data() + m0 * N, N);
          }
          Expect("spmv_windowed", set, K, N, M, y, expected);
        }
      }
    }
  }
  // Stored float16 and int8 values (the sliced layout keeps them at that width), long gaps
  // (escapes, 16-bit steps) and a wide matrix.
  for (ValueType type : {ValueType::kFloat16, ValueType::kInt8}) {
    const ColumnLists w = Stored(RandomColumns(200, 90, 0.2, rng), type);
    std::vector<float> a(static_cast<size_t>(3 * w.K)), bias(static_cast<size_t>(w.N));
    for (float& v : a) v = normal(rng);
    for (float& b : bias) b = normal(rng);
    TestSliced(set, w, a, 3, bias, Reference(w, a, 3, 0.5f, bias));
  }
  for (double density : {0.002, 0.0001}) {
    const ColumnLists w = RandomColumns(20000, 40, density, rng);
    std::vector<float> a(static_cast<size_t>(2 * w.K)), bias(static_cast<size_t>(w.N));
    for (float& v : a) v = normal(rng);
    TestSliced(set, w, a, 2, bias, Reference(w, a, 2, 0.5f, bias));
  }
  {  // window advances longer than 16 bits (empty rounds) and windows clamped to the last rows
    ColumnLists w;
    w.K = 150000;
    w.N = 3;
    w.ptr = {0, 3, 4, 6};
    w.row = {0, 100000, 149999, 70000, 5, 149990};
    w.value = {1.5f, -2.0f, 0.25f, 3.0f, -1.0f, 0.5f};
    std::vector<float> a(static_cast<size_t>(2 * w.K)), bias(static_cast<size_t>(w.N));
    for (float& v : a) v = normal(rng);
    TestSliced(set, w, a, 2, bias, Reference(w, a, 2, 0.5f, bias));
  }
  TestNonFinite(set);
  TestGather(set);
  TestGelu(set);
  TestLayerNorm(set);
  TestAttention(set);
  TestAttentionNonFinite(set);
}

// Streamed arrays: small ones from operator new, large ones (on Linux) on whole 2 MiB pages;
// both keep what is written to them.
void TestStreamedAllocator() {
  for (size_t bytes : {size_t{1000}, kHugePageMinBytes + 12345}) {
    std::vector<uint8_t, StreamedAllocator<uint8_t>> v(bytes, 7);
    v.back() = 9;
#if defined(__linux__)
    const bool aligned = bytes < kHugePageMinBytes || reinterpret_cast<uintptr_t>(v.data()) % kHugePageBytes == 0;
#else
    const bool aligned = true;
#endif
    if (v.front() != 7 || v.back() != 9 || !aligned) {
      std::printf("FAIL streamed allocator, %zu bytes\n", bytes);
      ++failures;
    }
  }
}

}  // namespace

int main() {
  int tested = 0;
  TestStreamedAllocator();
  for (const KernelSet& set : AllKernelSets()) {
    if (!set.supported()) {
      std::printf("skip %s (not supported by this CPU)\n", set.name);
      continue;
    }
    TestVariant(set);
    failures += TestUnifiedKernels(set);
    std::printf("%s %s\n", failures ? "checked" : "ok", set.name);
    ++tested;
  }
  std::printf("%d variants tested, %d failures\n", tested, failures);
  return failures == 0 && tested > 0 ? 0 : 1;
}
