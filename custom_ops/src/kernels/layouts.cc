#include "kernels/layouts.h"

#include "common/memory.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <tuple>

namespace lsc {

float ValueToFloat(ValueType type, uint32_t bits, float scale) {
  switch (type) {
    case ValueType::kFloat32: {
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    case ValueType::kFloat16: {
      const uint32_t sign = (bits & 0x8000u) << 16, exponent = (bits >> 10) & 0x1F, mantissa = bits & 0x3FF;
      uint32_t out;
      if (exponent == 0x1F) {
        out = sign | 0x7F800000u | (mantissa << 13);  // inf / nan (payload kept)
      } else if (exponent != 0) {
        out = sign | ((exponent + 112) << 23) | (mantissa << 13);
      } else if (mantissa == 0) {
        out = sign;
      } else {  // subnormal half: normalize
        int e = -1;
        uint32_t m = mantissa;
        do {
          ++e;
          m <<= 1;
        } while (!(m & 0x400));
        out = sign | ((112 - e) << 23) | ((m & 0x3FF) << 13);
      }
      float f;
      std::memcpy(&f, &out, 4);
      return f;
    }
    case ValueType::kInt8:
      return scale * static_cast<float>(static_cast<int8_t>(bits & 0xFF));
  }
  return 0.0f;
}

Status BuildColumnLists(const MatrixDecoder& decoder, bool k_is_row, ColumnLists* out) {
  const Blob& blob = decoder.blob();
  const int64_t rows = blob.rows(), cols = blob.cols();
  ColumnLists lists;
  lists.K = k_is_row ? rows : cols;
  lists.N = k_is_row ? cols : rows;
  lists.stored = blob.dtype;
  lists.scale = blob.scale;
  if (lists.K > 0xFFFFFFFFll) return Fail("weight has ", lists.K, " rows; at most 2^32 - 1 are supported");
  if (lists.N >= (int64_t{1} << 40)) return Fail("weight has ", lists.N, " columns; at most 2^40 are supported");
  const uint64_t nnz_bound = std::min(blob.nnz, blob.total_size);
  LSC_RETURN_IF_ERROR(CheckAllocation(8 * static_cast<uint64_t>(lists.N + 1) + 8 * nnz_bound,
                                      "the column index of this weight"));
  // Pass 1: count the non-zeros of every column (and validate every chunk).
  std::vector<uint64_t> counts(static_cast<size_t>(lists.N) + 1, 0);
  LSC_RETURN_IF_ERROR(DecodeAll(decoder, [&](const std::vector<Entry>& entries) {
    for (const Entry& e : entries) ++counts[static_cast<size_t>(k_is_row ? e.col : e.row) + 1];
  }));
  std::partial_sum(counts.begin(), counts.end(), counts.begin());
  lists.ptr = counts;
  lists.row.resize(counts.back());
  lists.value.resize(counts.back());
  // Pass 2: fill.
  std::vector<Entry> entries;
  for (size_t c = 0; c < decoder.num_chunks(); ++c) {
    entries.clear();
    LSC_RETURN_IF_ERROR(decoder.DecodeChunk(c, &entries));
    for (const Entry& e : entries) {
      const int64_t n = k_is_row ? e.col : e.row, k = k_is_row ? e.row : e.col;
      const uint64_t at = counts[static_cast<size_t>(n)]++;
      lists.row[at] = static_cast<uint32_t>(k);
      lists.value[at] = ValueToFloat(blob.dtype, e.bits, blob.scale);
    }
  }
  // Chunks arrive in row order, so columns are sorted unless a codec emits out of order.
  for (int64_t n = 0; n < lists.N; ++n) {
    const uint64_t lo = lists.ptr[n], hi = lists.ptr[n + 1];
    if (std::is_sorted(lists.row.begin() + lo, lists.row.begin() + hi)) continue;
    std::vector<std::pair<uint32_t, float>> column(hi - lo);
    for (uint64_t i = lo; i < hi; ++i) column[i - lo] = {lists.row[i], lists.value[i]};
    std::sort(column.begin(), column.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (uint64_t i = lo; i < hi; ++i) std::tie(lists.row[i], lists.value[i]) = column[i - lo];
  }
  *out = std::move(lists);
  return Status();
}

int64_t WindowedStride(const WindowedLayout& layout) { return (layout.windows + 1) * layout.window; }

void StageWindowedRow(const WindowedLayout& layout, const float* row, float* staged) {
  const int64_t rows = layout.window - 1;
  for (int64_t w = 0; w < layout.windows; ++w) {
    const int64_t k0 = w * rows, count = std::min<int64_t>(rows, layout.K - k0);
    std::memcpy(staged + w * layout.window, row + k0, static_cast<size_t>(count) * sizeof(float));
    std::fill(staged + w * layout.window + count, staged + (w + 1) * layout.window, 0.0f);
  }
  std::fill(staged + layout.windows * layout.window, staged + WindowedStride(layout), 0.0f);
}

bool WindowedLayoutWorthwhile(const ColumnLists& columns, int lanes, int window) {
  // One round count per (group, window): fine for any plausibly sparse weight, not for a huge
  // nearly empty one.
  const uint64_t cells = static_cast<uint64_t>((columns.N + lanes - 1) / lanes) *
                         static_cast<uint64_t>((columns.K + window - 2) / (window - 1));
  return cells <= 64 * (columns.nnz() + static_cast<uint64_t>(columns.N)) + (1u << 20);
}

void BuildWindowedLayout(const ColumnLists& columns, int lanes, int window, WindowedLayout* out) {
  WindowedLayout layout;
  layout.lanes = lanes;
  layout.window = window;
  layout.K = columns.K;
  layout.N = columns.N;
  layout.groups = (columns.N + lanes - 1) / lanes;
  const int64_t rows = window - 1;  // the last slot of each window stays zero (padding reads it)
  layout.windows = (columns.K + rows - 1) / rows;
  layout.rounds.assign(static_cast<size_t>(layout.groups * layout.windows), 0);
  layout.group_start.push_back(0);
  std::vector<uint64_t> cursor(lanes), end(lanes);
  for (int64_t g = 0; g < layout.groups; ++g) {
    for (int j = 0; j < lanes; ++j) {
      const int64_t n = g * lanes + j;
      cursor[j] = n < columns.N ? columns.ptr[n] : 0;
      end[j] = n < columns.N ? columns.ptr[n + 1] : 0;
    }
    for (int64_t w = 0; w < layout.windows; ++w) {
      const uint32_t limit = static_cast<uint32_t>(std::min<int64_t>((w + 1) * rows, columns.K));
      int rounds = 0;
      for (;; ++rounds) {
        bool any = false;
        const size_t base = layout.offset.size();
        layout.offset.resize(base + lanes, static_cast<uint8_t>(rows));
        layout.value.resize(base + lanes, 0.0f);
        for (int j = 0; j < lanes; ++j) {
          if (cursor[j] < end[j] && columns.row[cursor[j]] < limit) {
            layout.offset[base + j] = static_cast<uint8_t>(columns.row[cursor[j]] - w * rows);
            layout.value[base + j] = columns.value[cursor[j]];
            ++cursor[j];
            any = true;
          }
        }
        if (!any) {
          layout.offset.resize(base);
          layout.value.resize(base);
          break;
        }
      }
      layout.rounds[g * layout.windows + w] = static_cast<uint8_t>(rounds);
    }
    layout.group_start.push_back(layout.offset.size() / lanes);
  }
  *out = std::move(layout);
}

}  // namespace lsc
