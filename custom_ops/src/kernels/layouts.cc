#include "kernels/layouts.h"

#include "common/checked.h"
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
  // The column index costs 8 bytes per column whether or not the column holds data.
  LSC_RETURN_IF_ERROR(CheckDeclaredExtent(lists.N, blob.total_size, "the weight's number of output columns"));
  // Alive at the peak: the column index, the (row, value) arrays of the header's nnz (checked
  // against the decoded count, which cannot exceed it), and one chunk of decoded entries.
  const uint64_t index_bytes = 8 * static_cast<uint64_t>(lists.N + 1);
  const uint64_t nnz = blob.nnz;  // <= numel < 2^62
  LSC_RETURN_IF_ERROR(CheckAllocation(index_bytes + 8 * nnz, "the column lists of this weight"));
  // Pass 1: count the non-zeros of every column in ptr[n + 1] (and validate every chunk).
  lists.ptr.assign(static_cast<size_t>(lists.N) + 1, 0);
  std::vector<Entry> entries;
  for (size_t c = 0; c < decoder.num_chunks(); ++c) {
    entries.clear();
    LSC_RETURN_IF_ERROR(decoder.DecodeChunk(c, &entries));
    if (entries.size() > nnz - lists.ptr[0]) {
      return Fail(CodecName(blob.codec), ": decoded more than the ", nnz, " non-zeros the header declares");
    }
    lists.ptr[0] += entries.size();  // running total, reset below
    for (const Entry& e : entries) ++lists.ptr[static_cast<size_t>(k_is_row ? e.col : e.row) + 1];
  }
  if (lists.ptr[0] != nnz) {
    return Fail(CodecName(blob.codec), ": decoded ", lists.ptr[0], " non-zeros, header declares ", nnz);
  }
  const uint64_t peak = index_bytes + 8 * nnz + sizeof(Entry) * static_cast<uint64_t>(entries.capacity());
  LSC_RETURN_IF_ERROR(CheckAllocation(peak, "the column lists of this weight"));
  lists.ptr[0] = 0;
  std::partial_sum(lists.ptr.begin(), lists.ptr.end(), lists.ptr.begin());
  lists.row.resize(nnz);
  lists.value.resize(nnz);
  // Pass 2: fill, with ptr[n] as the cursor of column n; afterwards ptr[n] is the end of column
  // n, and shifting by one restores the starts.
  for (size_t c = 0; c < decoder.num_chunks(); ++c) {
    entries.clear();
    LSC_RETURN_IF_ERROR(decoder.DecodeChunk(c, &entries));
    for (const Entry& e : entries) {
      const int64_t n = k_is_row ? e.col : e.row, k = k_is_row ? e.row : e.col;
      const uint64_t at = lists.ptr[static_cast<size_t>(n)]++;
      lists.row[at] = static_cast<uint32_t>(k);
      lists.value[at] = ValueToFloat(blob.dtype, e.bits, blob.scale);
    }
  }
  std::move_backward(lists.ptr.begin(), lists.ptr.end() - 1, lists.ptr.end());
  lists.ptr[0] = 0;
  // Chunks arrive in row order, so columns are sorted unless a codec emits out of order.
  SortColumnsByRow(&lists);
  *out = std::move(lists);
  return Status();
}

void SortColumnsByRow(ColumnLists* lists) {
  for (int64_t n = 0; n < lists->N; ++n) {
    const uint64_t lo = lists->ptr[n], hi = lists->ptr[n + 1];
    if (std::is_sorted(lists->row.begin() + lo, lists->row.begin() + hi)) continue;
    std::vector<std::pair<uint32_t, float>> column(hi - lo);
    for (uint64_t i = lo; i < hi; ++i) column[i - lo] = {lists->row[i], lists->value[i]};
    std::sort(column.begin(), column.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (uint64_t i = lo; i < hi; ++i) std::tie(lists->row[i], lists->value[i]) = column[i - lo];
  }
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
  // One round count per (group, window), and a pass over every cell to build and to run it:
  // worthwhile when the cells are in proportion to the non-zeros, never for a huge, nearly
  // empty weight, whose declared shape alone would set the cost. A window holds window - 1 rows.
  int64_t cells = 0;
  if (lanes <= 0 || window <= 1 ||
      !MulExtent((columns.N + lanes - 1) / lanes, (columns.K + window - 2) / (window - 1), &cells)) {
    return false;
  }
  // At worst one lane of a round carries work: 5 * lanes bytes per non-zero, within the budget.
  const uint64_t worst_bytes = 5 * static_cast<uint64_t>(lanes) * columns.nnz() + static_cast<uint64_t>(cells);
  return static_cast<uint64_t>(cells) <= 64 * columns.nnz() + (uint64_t{1} << 20) && worst_bytes <= MemoryBudget();
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
